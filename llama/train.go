package llama

/*
#include <stdlib.h>
#include "train.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// ErrTrain: the trainer cannot be created for this model or adapter, or a
// training step failed.
var ErrTrain = errors.New("training failed")

// TrainerOptions size a Trainer.
type TrainerOptions struct {
	// Threads is the number of CPU threads (0 = runtime.NumCPU()).
	Threads int
	// MaxTokens is the most tokens one Accumulate or Evaluate call may pass
	// (the physical batch); memory for activations grows with it.
	MaxTokens int
	// GraphOnly builds the trainer's graphs without allocating gradients,
	// moments or F32 copies (their sizes are still reported): for Graph and
	// the memory estimate on models loaded with ModelOptions.NoAlloc. Such a
	// trainer refuses to train.
	GraphOnly bool
	// AsGPU builds the graphs a GPU backend would be given, on any machine:
	// without the CPU-only rewrites, and with F32 copies of every base weight
	// that is not F32 (CUDA's OUT_PROD takes F32 only). With GraphOnly it lets
	// the CPU check GPU training against CheckCUDA.
	AsGPU bool
	// rawBackward keeps ggml's backward graph without the rewrites that
	// make it legal for CUDA, so a test can show they are needed.
	rawBackward bool
}

// Trainer trains the A and B matrices of one LoRA adapter while the model's
// own weights stay frozen (NewTrainer), or every weight of the model
// (NewFullTrainer). It computes the forward and backward pass with
// ggml on the model's backends, keeps a gradient accumulator and the AdamW
// moments for every adapter tensor, and updates the adapter's tensors in
// place, so a Context using the adapter sees the trained values after each
// Update.
//
// Only dense llama-family models (llama, qwen2, qwen3) are supported; the
// constructor refuses others. Base weights whose type the backward pass
// cannot read on their backend (F16 and BF16 on the CPU, anything but F32
// on CUDA) are copied to F32 once; UpcastBytes reports the memory that
// takes. A Trainer is not safe for concurrent use, and a Context must not
// decode with the adapter while Update runs.
type Trainer struct {
	mu      sync.Mutex
	c       *C.cp_trainer
	model   *Model
	adapter *Adapter
	tensors []TrainTensor
	max     int
}

// The trainer's data types are llama/lm's, the cgo-free contract that
// finetune drives (*Trainer implements lm.Trainer).
type (
	TrainTensor = lm.TrainTensor
	TensorKind  = lm.TensorKind
	MemoryPlan  = lm.MemoryPlan
	TrainBatch  = lm.TrainBatch
	BatchLoss   = lm.BatchLoss
	AdamW       = lm.AdamW
)

// Kinds of tensor data (lm's constants, which are the C enum's values).
const (
	TensorValue = lm.TensorValue // the adapter tensor
	TensorAdamM = lm.TensorAdamM // AdamW first moment
	TensorAdamV = lm.TensorAdamV // AdamW second moment
	TensorGrad  = lm.TensorGrad  // accumulated gradient
)

// lm's tensor kinds must be the C enum's values: an index out of range
// (negative or past 0) fails the build otherwise.
var (
	_ = [1]struct{}{}[C.CP_TRAIN_VALUE-int(lm.TensorValue)]
	_ = [1]struct{}{}[int(lm.TensorValue)-C.CP_TRAIN_VALUE]
	_ = [1]struct{}{}[C.CP_TRAIN_M-int(lm.TensorAdamM)]
	_ = [1]struct{}{}[int(lm.TensorAdamM)-C.CP_TRAIN_M]
	_ = [1]struct{}{}[C.CP_TRAIN_V-int(lm.TensorAdamV)]
	_ = [1]struct{}{}[int(lm.TensorAdamV)-C.CP_TRAIN_V]
	_ = [1]struct{}{}[C.CP_TRAIN_GRAD-int(lm.TensorGrad)]
	_ = [1]struct{}{}[int(lm.TensorGrad)-C.CP_TRAIN_GRAD]
)

// MaxTrainSequences is the most sequences one TrainBatch may hold.
const MaxTrainSequences = lm.MaxTrainSequences

// The binding's trainer is the one finetune drives.
var _ lm.Trainer = (*Trainer)(nil)

// NewTrainer prepares training of a, which must have been loaded for m and
// hold F32 tensors. It fails with ErrTrain (and a reason) for unsupported
// architectures, weight types and adapters, before any training work.
func (m *Model) NewTrainer(a *Adapter, opts TrainerOptions) (t *Trainer, err error) {
	err = m.use(func(mc *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		t, err = m.newAdapterTrainer(mc, a, opts)
		return err
	})
	return t, err
}

func (m *Model) newAdapterTrainer(mc *C.struct_llama_model, a *Adapter, opts TrainerOptions) (*Trainer, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: no adapter", ErrTrain)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return nil, fmt.Errorf("new trainer: adapter %s: %w", a.path, ErrClosed)
	}
	if a.model != m {
		return nil, fmt.Errorf("%w: adapter %s was loaded for model %s, not %s", ErrTrain, a.path, a.model.path, m.path)
	}
	t, err := m.newTrainer(mc, a, opts)
	if err != nil {
		return nil, err
	}
	// The trainer holds pointers into the adapter: it may not be freed first.
	a.attached++
	return t, nil
}

// NewFullTrainer prepares training of every weight of m: token embeddings,
// norms, all layer matrices and the output matrix become parameters with
// their own gradients and AdamW moments (three extra copies of the model in
// memory), and Update changes the model's weights in place, so a Context of
// m sees the trained values after each step. A tied output matrix (a model
// without output.weight) is trained as the token embedding it is.
//
// m must hold F32 weights loaded with ModelOptions.NoMmap (mapped weights
// are read-only); other models fail with ErrTrain. Weight decay applies to
// matrices only, never to norm weights or biases.
func (m *Model) NewFullTrainer(opts TrainerOptions) (t *Trainer, err error) {
	err = m.use(func(mc *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		t, err = m.newTrainer(mc, nil, opts)
		return err
	})
	return t, err
}

// newTrainer creates the C trainer: for adapter a, or for the model's own
// weights when a is nil. The caller holds a's lock and is inside m.use.
func (m *Model) newTrainer(mc *C.struct_llama_model, a *Adapter, opts TrainerOptions) (*Trainer, error) {
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.MaxTokens <= 0 {
		return nil, fmt.Errorf("%w: MaxTokens must be positive, got %d", ErrTrain, opts.MaxTokens)
	}
	eb := newErrBuf()
	defer eb.free()
	cfg := C.cp_train_config{n_threads: C.int32_t(opts.Threads), max_tokens: C.int32_t(opts.MaxTokens),
		graph_only: C.bool(opts.GraphOnly), as_gpu: C.bool(opts.AsGPU), raw_backward: C.bool(opts.rawBackward)}
	var c *C.cp_trainer
	if a != nil {
		c = C.cp_train_new(mc, a.c, cfg, eb.p, errBufLen)
	} else {
		c = C.cp_train_new_full(mc, cfg, eb.p, errBufLen)
	}
	if c == nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrTrain, m.path, eb)
	}
	t := &Trainer{c: c, model: m, adapter: a, max: opts.MaxTokens}
	n := int(C.cp_train_n_tensors(c))
	for i := 0; i < n; i++ {
		tt := TrainTensor{Name: C.GoString(C.cp_train_tensor_name(c, C.int32_t(i)))}
		for d := 0; d < 4; d++ {
			if ne := int(C.cp_train_tensor_ne(c, C.int32_t(i), C.int32_t(d))); ne > 1 || d < 2 {
				tt.Shape = append(tt.Shape, ne)
			}
		}
		t.tensors = append(t.tensors, tt)
	}
	// The trainer holds pointers into the model: it may not be freed first.
	m.retain(userTrainers)
	if err := t.checkGPU(); err != nil {
		// Not t.Close: the adapter is not attached yet (its caller holds
		// its lock and attaches it on success).
		C.cp_train_free(t.c)
		t.c = nil
		m.release(userTrainers)
		return nil, err
	}
	return t, nil
}

// GPU is the name of the GPU backend the trainer computes on ("" when it
// runs on the CPU only).
func (t *Trainer) GPU() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return ""
	}
	return C.GoString(C.cp_train_gpu(t.c))
}

// checkGPU refuses, before the first step, training graphs that the CUDA
// backend would abort on or compute wrongly (CheckCUDA): an error now
// instead of a crashed process later. Graphs are checked at the largest
// batch the trainer takes.
func (t *Trainer) checkGPU() error {
	gpu := t.GPU()
	if !strings.HasPrefix(gpu, "CUDA") {
		return nil
	}
	for _, kind := range []GraphKind{GraphStep, GraphAdamW, GraphGradNorm} {
		g, err := t.Graph(kind, t.max, 1)
		if err != nil {
			return err
		}
		if r := CheckCUDA(g); !r.OK() {
			return fmt.Errorf("%w: the training graph would fail on %s: %s", ErrTrain, gpu, r.Summary())
		}
	}
	return nil
}

// Close frees the trainer's buffers. The adapter keeps its trained values.
func (t *Trainer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil
	}
	C.cp_train_free(t.c)
	t.c = nil
	if t.adapter != nil {
		t.adapter.detached()
	}
	t.model.release(userTrainers)
	return nil
}

// OpenTrainer opens the lm.Trainer that finetune drives: of the LoRA
// adapter in the file adapterPath, loaded for m (NewTrainer), or of every
// weight of m when adapterPath is "" (NewFullTrainer). Its Close frees the
// trainer and the adapter it loaded.
func (m *Model) OpenTrainer(adapterPath string, opts lm.TrainerOptions) (lm.Trainer, error) {
	o := TrainerOptions{Threads: opts.Threads, MaxTokens: opts.MaxTokens, GraphOnly: opts.GraphOnly, AsGPU: opts.AsGPU}
	if adapterPath == "" {
		t, err := m.NewFullTrainer(o)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	a, err := m.LoadAdapter(adapterPath)
	if err != nil {
		return nil, err
	}
	t, err := m.NewTrainer(a, o)
	if err != nil {
		a.Close()
		return nil, err
	}
	return adapterTrainer{t}, nil
}

// adapterTrainer is a Trainer that owns the adapter it trains.
type adapterTrainer struct{ *Trainer }

// Close frees the trainer, then its adapter.
func (t adapterTrainer) Close() error {
	err := t.Trainer.Close()
	if aerr := t.adapter.Close(); err == nil {
		err = aerr
	}
	return err
}

// Adapter is the adapter being trained (nil for a full trainer).
func (t *Trainer) Adapter() *Adapter { return t.adapter }

// Full reports whether the trainer trains the model's own weights.
func (t *Trainer) Full() bool { return t.adapter == nil }

// MaxTokens is the most tokens one batch may hold.
func (t *Trainer) MaxTokens() int { return t.max }

// Tensors lists the trainable tensors in a fixed order (sorted by name).
func (t *Trainer) Tensors() []TrainTensor {
	out := make([]TrainTensor, len(t.tensors))
	copy(out, t.tensors)
	return out
}

// Params is the number of trainable values.
func (t *Trainer) Params() int {
	n := 0
	for _, tt := range t.tensors {
		n += tt.Elements()
	}
	return n
}

// UpcastBytes is the memory taken by F32 copies of base weights.
func (t *Trainer) UpcastBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return 0
	}
	return int64(C.cp_train_upcast_bytes(t.c))
}

// PlanMemory sizes one step of tokens tokens in seqs sequences without
// computing or allocating it: with GraphOnly (and AsGPU) on a model loaded
// with ModelOptions.NoAlloc, it tells what a machine needs before it is
// tried.
func (t *Trainer) PlanMemory(tokens, seqs int) (MemoryPlan, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return MemoryPlan{}, fmt.Errorf("plan memory: %w", ErrClosed)
	}
	if tokens < 1 || tokens > t.max || seqs < 1 || seqs > tokens {
		return MemoryPlan{}, fmt.Errorf("plan memory: %d tokens in %d sequences; this trainer takes 1 to %d tokens", tokens, seqs, t.max)
	}
	eb := newErrBuf()
	defer eb.free()
	var compute C.int64_t
	if C.cp_train_plan_compute(t.c, C.int32_t(tokens), C.int32_t(seqs), &compute, eb.p, errBufLen) != 0 {
		return MemoryPlan{}, fmt.Errorf("%w: plan memory: %s", ErrTrain, eb)
	}
	p := MemoryPlan{
		Upcast:  int64(C.cp_train_upcast_bytes(t.c)),
		State:   int64(C.cp_train_state_bytes(t.c)),
		Compute: int64(compute),
	}
	if err := t.model.use(func(mc *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		p.Weights = int64(C.llama_model_size(mc))
		return nil
	}); err != nil {
		return MemoryPlan{}, fmt.Errorf("plan memory: %w", err)
	}
	if t.adapter != nil {
		for _, tt := range t.tensors {
			p.Adapter += int64(tt.Elements()) * 4
		}
	}
	return p, nil
}

// StateBytes is the memory taken by gradients and AdamW moments.
func (t *Trainer) StateBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return 0
	}
	return int64(C.cp_train_state_bytes(t.c))
}

// ComputeBytes is the largest memory the compute buffers (activations, their
// gradients and temporaries) have needed for one batch so far; it grows with
// the batch size and is the part of training memory MaxTokens controls.
func (t *Trainer) ComputeBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return 0
	}
	return int64(C.cp_train_compute_bytes(t.c))
}

func (t *Trainer) ptr(op string) (*C.cp_trainer, error) {
	if t.c == nil {
		return nil, fmt.Errorf("%s: trainer %w", op, ErrClosed)
	}
	return t.c, nil
}

// Get copies one kind of data of trainable tensor i.
func (t *Trainer) Get(i int, kind TensorKind) ([]float32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("trainer get")
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(t.tensors) {
		return nil, fmt.Errorf("trainer get: tensor %d out of range (%d tensors)", i, len(t.tensors))
	}
	out := make([]float32, t.tensors[i].Elements())
	eb := newErrBuf()
	defer eb.free()
	if C.cp_train_tensor_get(c, C.int32_t(i), C.int32_t(kind), (*C.float)(unsafe.Pointer(&out[0])), C.int64_t(len(out)), eb.p, errBufLen) != 0 {
		return nil, fmt.Errorf("%w: get %s: %s", ErrTrain, t.tensors[i].Name, eb)
	}
	return out, nil
}

// Set overwrites one kind of data of trainable tensor i (to resume from a
// checkpoint).
func (t *Trainer) Set(i int, kind TensorKind, v []float32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("trainer set")
	if err != nil {
		return err
	}
	if i < 0 || i >= len(t.tensors) {
		return fmt.Errorf("trainer set: tensor %d out of range (%d tensors)", i, len(t.tensors))
	}
	if len(v) != t.tensors[i].Elements() {
		return fmt.Errorf("trainer set %s: %d values, want %d", t.tensors[i].Name, len(v), t.tensors[i].Elements())
	}
	eb := newErrBuf()
	defer eb.free()
	if C.cp_train_tensor_set(c, C.int32_t(i), C.int32_t(kind), (*C.float)(unsafe.Pointer(&v[0])), C.int64_t(len(v)), eb.p, errBufLen) != 0 {
		return fmt.Errorf("%w: set %s: %s", ErrTrain, t.tensors[i].Name, eb)
	}
	return nil
}

// Accumulate runs the forward and backward pass over b and adds
// weight × d(summed loss)/d(trainable tensors) to the gradient accumulators. For the
// gradient of the mean loss over an optimizer step, pass weight = 1/(scored
// tokens in the whole step).
func (t *Trainer) Accumulate(b *TrainBatch, weight float32) (BatchLoss, error) {
	return t.batch(b, true, weight)
}

// Evaluate runs the forward pass only (held-out loss).
func (t *Trainer) Evaluate(b *TrainBatch) (BatchLoss, error) {
	return t.batch(b, false, 0)
}

func (t *Trainer) batch(b *TrainBatch, backward bool, weight float32) (BatchLoss, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("train batch")
	if err != nil {
		return BatchLoss{}, err
	}
	n := len(b.Tokens)
	if n == 0 || len(b.Pos) != n || len(b.Seq) != n || len(b.Labels) != n {
		return BatchLoss{}, fmt.Errorf("train batch: %d tokens, %d positions, %d sequence ids, %d labels", n, len(b.Pos), len(b.Seq), len(b.Labels))
	}
	if n > t.max {
		return BatchLoss{}, fmt.Errorf("train batch: %d tokens, trainer takes at most %d", n, t.max)
	}
	eb := newErrBuf()
	defer eb.free()
	var res C.cp_train_result
	rc := C.cp_train_batch(c,
		(*C.llama_token)(unsafe.Pointer(&b.Tokens[0])),
		(*C.llama_pos)(unsafe.Pointer(&b.Pos[0])),
		(*C.llama_seq_id)(unsafe.Pointer(&b.Seq[0])),
		(*C.llama_token)(unsafe.Pointer(&b.Labels[0])),
		C.int32_t(n), C.bool(backward), C.float(weight), &res, eb.p, errBufLen)
	if rc != 0 {
		return BatchLoss{}, fmt.Errorf("%w: %s", ErrTrain, eb)
	}
	return BatchLoss{LossSum: float64(res.loss_sum), Scored: int(res.n_scored), Correct: int(res.n_correct)}, nil
}

// ZeroGrad clears the gradient accumulators (start of an optimizer step).
func (t *Trainer) ZeroGrad() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("zero grad")
	if err != nil {
		return err
	}
	eb := newErrBuf()
	defer eb.free()
	if C.cp_train_zero_grad(c, eb.p, errBufLen) != 0 {
		return fmt.Errorf("%w: %s", ErrTrain, eb)
	}
	return nil
}

// GradNorm is the L2 norm of all accumulated gradients together.
func (t *Trainer) GradNorm() (float64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("grad norm")
	if err != nil {
		return 0, err
	}
	eb := newErrBuf()
	defer eb.free()
	var norm C.double
	if C.cp_train_grad_norm(c, &norm, eb.p, errBufLen) != 0 {
		return 0, fmt.Errorf("%w: %s", ErrTrain, eb)
	}
	return float64(norm), nil
}

// Update applies one AdamW step to the trainable tensors from the
// accumulated gradients (which it leaves in place; call ZeroGrad next).
func (t *Trainer) Update(p AdamW) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ptr("update")
	if err != nil {
		return err
	}
	if p.GradScale == 0 {
		p.GradScale = 1
	}
	eb := newErrBuf()
	defer eb.free()
	cp := C.cp_adamw{lr: C.float(p.LR), beta1: C.float(p.Beta1), beta2: C.float(p.Beta2), eps: C.float(p.Eps),
		wd: C.float(p.WeightDecay), grad_scale: C.float(p.GradScale), t: C.int64_t(p.Step)}
	if C.cp_train_adamw(c, cp, eb.p, errBufLen) != 0 {
		return fmt.Errorf("%w: %s", ErrTrain, eb)
	}
	return nil
}
