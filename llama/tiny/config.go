// Package tiny generates a small, deterministic llama-architecture GGUF model
// (random weights, byte-level vocabulary, ChatML template) and matching LoRA
// adapters, so tests and the demo can run llama.cpp without downloading a
// model.
package tiny

import (
	"fmt"
	"strconv"
	"strings"
)

// Config describes the model shape and the seed of its random weights.
type Config struct {
	Embedding     int // hidden size E
	Heads         int // attention heads; E must be a multiple
	KVHeads       int // key/value heads; Heads must be a multiple
	FeedForward   int // FFN hidden size F
	Layers        int // transformer blocks
	ContextLength int // training context written to llama.context_length
	Seed          uint64
	// Vocab is the number of tokens when the model carries another
	// vocabulary than the byte-level one (WriteInit with
	// InitOptions.Vocab); 0 means the byte-level VocabSize.
	Vocab int
}

// vocabSize is the number of rows of the embedding and output matrices.
func (c Config) vocabSize() int {
	if c.Vocab > 0 {
		return c.Vocab
	}
	return VocabSize
}

// DefaultConfig returns the model the tests and the demo use: about 120k
// parameters, under 0.5 MB on disk.
func DefaultConfig() Config {
	return Config{
		Embedding:     64,
		Heads:         4,
		KVHeads:       4,
		FeedForward:   128,
		Layers:        2,
		ContextLength: 4096,
		Seed:          0x5eed_c0de_7a11_0001,
	}
}

// Fixed hyper-parameters that are not worth configuring.
const (
	rmsEpsilon   = 1e-5
	ropeFreqBase = 10000
	modelName    = "codeplan-tiny"
	// maxParams keeps an accidental huge Config from allocating gigabytes;
	// this package is for tiny test models.
	maxParams = 64 << 20
)

// HeadDim returns the per-head dimension E/Heads.
func (c Config) HeadDim() int { return c.Embedding / c.Heads }

// Validate reports the first inconsistency in c.
func (c Config) Validate() error { return c.validate(maxParams) }

// validate checks c with a limit on the parameter count.
func (c Config) validate(limit int) error {
	const maxDim = 1 << 16
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Embedding", c.Embedding}, {"Heads", c.Heads}, {"KVHeads", c.KVHeads},
		{"FeedForward", c.FeedForward}, {"Layers", c.Layers},
	} {
		if f.v <= 0 || f.v > maxDim {
			return fmt.Errorf("tiny: config %s = %d, want 1..%d", f.name, f.v, maxDim)
		}
	}
	if c.ContextLength <= 0 || c.ContextLength > 1<<24 {
		return fmt.Errorf("tiny: config ContextLength = %d, want 1..%d", c.ContextLength, 1<<24)
	}
	if c.Embedding%c.Heads != 0 {
		return fmt.Errorf("tiny: config Embedding %d is not a multiple of Heads %d", c.Embedding, c.Heads)
	}
	if c.HeadDim()%2 != 0 {
		return fmt.Errorf("tiny: config head dimension %d must be even for RoPE", c.HeadDim())
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("tiny: config Heads %d is not a multiple of KVHeads %d", c.Heads, c.KVHeads)
	}
	if p := c.params(); p > limit {
		return fmt.Errorf("tiny: config has %d parameters, more than the %d this package is meant for", p, limit)
	}
	return nil
}

// params counts the model's parameters.
func (c Config) params() int {
	e, f, kv := c.Embedding, c.FeedForward, c.HeadDim()*c.KVHeads
	perLayer := 2*e + 2*e*e + 2*e*kv + 3*e*f
	return 2*e*c.vocabSize() + e + c.Layers*perLayer
}

// blockTensors lists the per-block tensor kinds in file order.
var blockTensors = []string{
	"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
	"ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
}

// TensorNames returns the names of all model tensors in file order.
func TensorNames(cfg Config) []string {
	names := []string{"token_embd.weight", "output_norm.weight", "output.weight"}
	for l := 0; l < cfg.Layers; l++ {
		for _, kind := range blockTensors {
			names = append(names, fmt.Sprintf("blk.%d.%s.weight", l, kind))
		}
	}
	return names
}

// TensorShape returns the ggml ne shape of the named model tensor; for a
// matrix it is {in, out}, which is what LoRA A and B shapes derive from.
func TensorShape(cfg Config, name string) ([]uint64, error) {
	e, v := uint64(cfg.Embedding), uint64(cfg.vocabSize())
	switch name {
	case "token_embd.weight", "output.weight":
		return []uint64{e, v}, nil
	case "output_norm.weight":
		return []uint64{e}, nil
	}
	layer, kind, err := splitBlockName(name)
	if err != nil {
		return nil, err
	}
	if layer >= cfg.Layers {
		return nil, fmt.Errorf("tiny: tensor %q: layer %d out of range, model has %d", name, layer, cfg.Layers)
	}
	shape, ok := blockShape(cfg, kind)
	if !ok {
		return nil, fmt.Errorf("tiny: unknown tensor %q", name)
	}
	return shape, nil
}

// blockShape returns the ne shape of a per-block tensor kind.
func blockShape(cfg Config, kind string) ([]uint64, bool) {
	e, f := uint64(cfg.Embedding), uint64(cfg.FeedForward)
	kv := uint64(cfg.HeadDim() * cfg.KVHeads)
	switch kind {
	case "attn_norm", "ffn_norm":
		return []uint64{e}, true
	case "attn_q", "attn_output":
		return []uint64{e, e}, true
	case "attn_k", "attn_v":
		return []uint64{e, kv}, true
	case "ffn_gate", "ffn_up":
		return []uint64{e, f}, true
	case "ffn_down":
		return []uint64{f, e}, true
	}
	return nil, false
}

// splitBlockName parses "blk.N.kind.weight".
func splitBlockName(name string) (layer int, kind string, err error) {
	parts := strings.Split(name, ".")
	if len(parts) != 4 || parts[0] != "blk" || parts[3] != "weight" {
		return 0, "", fmt.Errorf("tiny: unknown tensor %q", name)
	}
	layer, err = strconv.Atoi(parts[1])
	if err != nil || layer < 0 || strconv.Itoa(layer) != parts[1] {
		return 0, "", fmt.Errorf("tiny: tensor %q: bad layer number %q", name, parts[1])
	}
	return layer, parts[2], nil
}
