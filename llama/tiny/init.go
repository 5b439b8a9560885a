package tiny

import (
	"fmt"
	"math"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Initialisation of a model trained from scratch (WriteInit), GPT-2 style:
// every matrix, the token embedding and the output matrix included, is
// drawn from a normal distribution with standard deviation InitStd; the two
// matrices that write into the residual stream (attn_output, ffn_down) get
// InitStd/sqrt(2·layers) instead, so that the residual stream's variance
// does not grow with depth at initialisation (each block adds two such
// terms). RMSNorm weights are 1.
const (
	// InitStd is the standard deviation of the initial weights.
	InitStd = 0.02
	// MaxInitParams bounds the size of a model WriteInit writes (4 GiB of
	// F32 weights): training on a CPU is for small models.
	MaxInitParams = 1 << 30
	initName      = "codeplan-init"
)

// InitOptions are the choices WriteInit offers beyond the model's shape.
type InitOptions struct {
	// Tied leaves out output.weight: llama.cpp then computes the logits
	// with token_embd (tied input and output embeddings), which saves
	// embedding×vocabulary parameters.
	Tied bool
	// Vocab, if set, replaces the byte-level vocabulary (for example a
	// tokenizer trained by 'codeplan tokenizer train', read by
	// llama/hfvocab); Config.Vocab must then be its Len.
	Vocab Vocabulary
}

// Vocabulary is a tokenizer that writes its own GGUF keys (hfvocab.Vocab).
type Vocabulary interface {
	Len() int
	Apply(w *gguf.Writer)
}

// ResidualStd is the standard deviation of the residual output projections
// (attn_output, ffn_down) of a model with the given number of layers.
func ResidualStd(layers int) float64 { return InitStd / math.Sqrt(2*float64(layers)) }

// InitParams is the number of weights of the model WriteInit writes.
func InitParams(cfg Config, opts InitOptions) int {
	n := cfg.params()
	if opts.Tied {
		n -= cfg.Embedding * cfg.vocabSize()
	}
	return n
}

// WriteInit writes a llama-architecture model of shape cfg initialised for
// training from scratch (see InitStd): F32 weights from cfg.Seed, the
// byte-level vocabulary with <|endoftext|>, <|im_start|> and <|im_end|> as
// single control tokens (<|im_end|> is the end-of-generation token), and the
// ChatML chat template, so that chat formatting, tokenisation and stop
// strings work as with a released model. The same cfg and opts always give
// the same bytes. The file is written atomically.
func WriteInit(path string, cfg Config, opts InitOptions) error {
	if err := cfg.validate(MaxInitParams); err != nil {
		return err
	}
	if opts.Vocab != nil && opts.Vocab.Len() != cfg.vocabSize() {
		return fmt.Errorf("tiny: config vocabulary of %d tokens, but the tokenizer has %d", cfg.vocabSize(), opts.Vocab.Len())
	}
	w := newModelWriter(cfg, initName, fileTypes[gguf.TensorF32])
	if opts.Vocab != nil {
		// Replaces the byte-level keys newModelWriter wrote; a key the
		// tokenizer does not set keeps the byte-level default (no
		// automatic BOS or EOS).
		opts.Vocab.Apply(w)
	}
	w.SetString("codeplan.init.scheme", fmt.Sprintf("normal(0, %g); attn_output and ffn_down normal(0, %g/sqrt(2*%d)); norms 1", InitStd, InitStd, cfg.Layers))
	w.SetUint64("codeplan.init.seed", cfg.Seed)
	for _, name := range TensorNames(cfg) {
		if opts.Tied && name == "output.weight" {
			continue
		}
		shape, err := TensorShape(cfg, name)
		if err != nil {
			return err
		}
		if err := w.AddF32(name, shape, initWeights(cfg, name, shape)); err != nil {
			return fmt.Errorf("tiny: %w", err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("tiny: %w", err)
	}
	return nil
}

// initWeights generates the initial values of one tensor, from a stream of
// its own (so tensors do not depend on each other or on their order).
func initWeights(cfg Config, name string, shape []uint64) []float32 {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	if len(shape) == 1 { // RMSNorm weights
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = 1
		}
		return vals
	}
	std := InitStd
	if _, kind, err := splitBlockName(name); err == nil && (kind == "attn_output" || kind == "ffn_down") {
		std = ResidualStd(cfg.Layers)
	}
	return normals(newRNG(cfg.Seed, "init/"+name), n, std)
}
