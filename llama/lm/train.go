package lm

import (
	"errors"
	"fmt"
)

// SeqID identifies a sequence in a batch or context (llama.SeqID).
type SeqID int32

// Pos is a token position inside a sequence (llama.Pos).
type Pos int32

// ErrTextTooLong: the text is longer than a tokenizer accepts
// (llama.MaxTokenizeBytes); llama.ErrTextTooLong is this error.
var ErrTextTooLong = errors.New("text is too long to tokenize")

// Trainer is what finetune drives, one optimizer step at a time: a LoRA
// adapter's A and B matrices (or every weight of a model) with their
// gradients and AdamW moments. llama's *Trainer implements it (opened by
// llama.Model.OpenTrainer). It is not safe for concurrent use.
type Trainer interface {
	// Tensors lists the trainable tensors, in a fixed order.
	Tensors() []TrainTensor
	// Get and Set read and write one tensor's data of a kind.
	Get(i int, kind TensorKind) ([]float32, error)
	Set(i int, kind TensorKind, v []float32) error
	// Params is the number of trainable values.
	Params() int
	// UpcastBytes, StateBytes and ComputeBytes are the memory of the F32
	// copies of base weights, of gradients and moments, and of the last
	// step's compute buffers.
	UpcastBytes() int64
	StateBytes() int64
	ComputeBytes() int64
	// PlanMemory sizes one step of tokens tokens in seqs sequences without
	// computing it.
	PlanMemory(tokens, seqs int) (MemoryPlan, error)
	// ZeroGrad clears the gradient accumulators; Accumulate adds weight ×
	// the gradient of b's summed loss; Evaluate measures b's loss only;
	// GradNorm is the accumulated gradient's L2 norm; Update applies one
	// AdamW step.
	ZeroGrad() error
	Accumulate(b *TrainBatch, weight float32) (BatchLoss, error)
	Evaluate(b *TrainBatch) (BatchLoss, error)
	GradNorm() (float64, error)
	Update(p AdamW) error
	// Close frees the trainer (and the adapter it was opened with).
	Close() error
}

// TrainerOptions size a Trainer.
type TrainerOptions struct {
	// Threads is the number of CPU threads (0 = runtime.NumCPU()).
	Threads int
	// MaxTokens is the most tokens one Accumulate or Evaluate call may pass
	// (the physical batch); memory for activations grows with it.
	MaxTokens int
	// GraphOnly builds the trainer's graphs without allocating gradients,
	// moments or F32 copies (their sizes are still reported): for the
	// memory estimate on models loaded as shapes only. Such a trainer
	// refuses to train.
	GraphOnly bool
	// AsGPU builds the graphs a GPU backend would be given, on any machine.
	AsGPU bool
}

// TrainTensor describes one trainable tensor.
type TrainTensor struct {
	Name  string // e.g. "blk.0.attn_q.weight.lora_a", or "blk.0.attn_q.weight" when training fully
	Shape []int  // ggml ne order: {in, rank} for A, {rank, out} for B, the model's shape otherwise
}

// Elements is the number of values in the tensor.
func (t TrainTensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// TensorKind selects the data of a trainable tensor (the values are the
// binding's C enum, checked at compile time in llama).
type TensorKind int

// Kinds of tensor data.
const (
	TensorValue TensorKind = 0 // the trained tensor
	TensorAdamM TensorKind = 1 // AdamW first moment
	TensorAdamV TensorKind = 2 // AdamW second moment
	TensorGrad  TensorKind = 3 // accumulated gradient
)

// MemoryPlan is what a training step needs in memory, in bytes, by kind.
type MemoryPlan struct {
	Weights int64 // the model's weights as loaded
	Upcast  int64 // persistent F32 copies of base weights (types the device cannot convert per step)
	Adapter int64 // the LoRA adapter's values (0 for full training: they are the weights)
	State   int64 // gradients and AdamW moments of every trainable value
	Compute int64 // one step's compute buffers: activations, their gradients, per-step F32 copies
}

// Total is the sum of the parts.
func (p MemoryPlan) Total() int64 { return p.Weights + p.Upcast + p.Adapter + p.State + p.Compute }

// TrainBatch packs one or more token sequences into one forward/backward
// pass. Sequences do not attend to each other. Labels[i] is the token that
// should follow Tokens[i], or -1 where no prediction is scored.
type TrainBatch struct {
	Tokens []Token
	Pos    []Pos
	Seq    []SeqID
	Labels []Token
}

// MaxTrainSequences is the most sequences one TrainBatch may hold.
const MaxTrainSequences = 256

// Len is the number of tokens in the batch.
func (b *TrainBatch) Len() int { return len(b.Tokens) }

// Sequences is the number of sequences added.
func (b *TrainBatch) Sequences() int {
	if len(b.Seq) == 0 {
		return 0
	}
	return int(b.Seq[len(b.Seq)-1]) + 1
}

// Reset empties the batch, keeping its memory.
func (b *TrainBatch) Reset() {
	b.Tokens, b.Pos, b.Seq, b.Labels = b.Tokens[:0], b.Pos[:0], b.Seq[:0], b.Labels[:0]
}

// Add appends one sequence whose tokens from index scoredFrom on are the
// training target: the model is scored on predicting each of them from the
// tokens before it, never on predicting tokens before scoredFrom. It
// returns the number of scored tokens, len(tokens)-scoredFrom.
func (b *TrainBatch) Add(tokens []Token, scoredFrom int) (int, error) {
	if len(tokens) < 2 {
		return 0, fmt.Errorf("train batch: sequence of %d tokens is too short to score", len(tokens))
	}
	if scoredFrom < 1 || scoredFrom >= len(tokens) {
		return 0, fmt.Errorf("train batch: scored part starts at token %d of %d (want 1..%d)", scoredFrom, len(tokens), len(tokens)-1)
	}
	seq := SeqID(b.Sequences())
	if seq >= MaxTrainSequences {
		return 0, fmt.Errorf("train batch: more than %d sequences", MaxTrainSequences)
	}
	for i, tok := range tokens {
		label := Token(-1)
		if i+1 < len(tokens) && i+1 >= scoredFrom {
			label = tokens[i+1]
		}
		b.Tokens = append(b.Tokens, tok)
		b.Pos = append(b.Pos, Pos(i))
		b.Seq = append(b.Seq, seq)
		b.Labels = append(b.Labels, label)
	}
	return len(tokens) - scoredFrom, nil
}

// BatchLoss is what one batch measured.
type BatchLoss struct {
	LossSum float64 // summed cross-entropy of the scored tokens, in nats
	Scored  int     // scored tokens
	Correct int     // scored tokens the model already predicted (arg-max)
}

// Mean is the mean loss per scored token.
func (l BatchLoss) Mean() float64 {
	if l.Scored == 0 {
		return 0
	}
	return l.LossSum / float64(l.Scored)
}

// Add sums two measurements.
func (l BatchLoss) Add(o BatchLoss) BatchLoss {
	return BatchLoss{LossSum: l.LossSum + o.LossSum, Scored: l.Scored + o.Scored, Correct: l.Correct + o.Correct}
}

// AdamW are the parameters of one optimizer step (decoupled weight decay,
// as in ggml's opt_step_adamw).
type AdamW struct {
	LR          float32
	Beta1       float32 // 0.9 is usual
	Beta2       float32 // 0.999 is usual
	Eps         float32 // 1e-8 is usual
	WeightDecay float32 // decoupled; applied to matrices only (never to norm weights or biases)
	// GradScale multiplies the accumulated gradient first (1 = none; use
	// min(1, maxNorm/GradNorm()) to clip).
	GradScale float32
	// Step is the 1-based number of this optimizer step; it sets Adam's bias
	// correction, so a resumed run continues the count.
	Step int64
}
