package finetune

import (
	"fmt"

	"github.com/codeplan-dev/codeplan/llama"
)

// PlanMemory sizes, without training, what one step of cfg needs on the
// base b: weights, F32 copies, adapter, gradients and AdamW moments, and the
// compute buffers of a full --batch pass. The model is loaded as shapes only
// (llama.ModelOptions.NoAlloc), so an 8B plan takes seconds on any machine.
// With gpu the graphs are built as a CUDA device would get them (F32 copies
// or per-step conversions of non-F32 matrices for its OUT_PROD), which is
// what decides whether a GPU is large enough.
func PlanMemory(cfg Config, b *Base, gpu bool) (llama.MemoryPlan, error) {
	if err := cfg.Validate(); err != nil {
		return llama.MemoryPlan{}, err
	}
	m, err := llama.LoadModel(b.Path, llama.ModelOptions{NoAlloc: true})
	if err != nil {
		return llama.MemoryPlan{}, fmt.Errorf("plan memory: %w", err)
	}
	defer m.Close()
	meta := adapterMeta{base: b, alpha: float32(cfg.Alpha), rank: cfg.Rank, targets: cfg.Targets}
	tr, closeTrainer, err := newTrainer(m, cfg, b, meta, llama.TrainerOptions{Threads: 1, MaxTokens: cfg.Batch, GraphOnly: true, AsGPU: gpu})
	if err != nil {
		return llama.MemoryPlan{}, fmt.Errorf("plan memory: %w", err)
	}
	defer closeTrainer()
	return tr.PlanMemory(cfg.Batch, 1)
}
