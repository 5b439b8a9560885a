package finetune

import (
	"fmt"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// PlanMemory sizes, without training, what one step of cfg needs on the
// base b, loaded as m: weights, F32 copies, adapter, gradients and AdamW
// moments, and the compute buffers of a full --batch pass. Load m as
// shapes only (llama.ModelOptions.NoAlloc), so that an 8B plan takes
// seconds on any machine. With gpu the graphs are built as a CUDA device
// would get them (F32 copies or per-step conversions of non-F32 matrices
// for its OUT_PROD), which is what decides whether a GPU is large enough.
func PlanMemory(m Model, cfg Config, b *Base, gpu bool) (lm.MemoryPlan, error) {
	if err := cfg.Validate(); err != nil {
		return lm.MemoryPlan{}, err
	}
	meta := adapterMeta{base: b, alpha: float32(cfg.Alpha), rank: cfg.Rank, targets: cfg.Targets}
	tr, closeTrainer, err := newTrainer(m, cfg, b, meta, lm.TrainerOptions{Threads: 1, MaxTokens: cfg.Batch, GraphOnly: true, AsGPU: gpu})
	if err != nil {
		return lm.MemoryPlan{}, fmt.Errorf("plan memory: %w", err)
	}
	defer closeTrainer()
	return tr.PlanMemory(cfg.Batch, 1)
}
