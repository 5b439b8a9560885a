// Package randmodel writes random-weight llama-architecture GGUF models of
// real shapes (Llama-3-8B, Mistral-7B, Llama-3.2-1B), streamed to disk block
// by block so an 8B model never sits in memory. Random weights cost exactly
// what real ones cost to run, so these models time the real thing (with a
// fixed number of generated tokens) without a download.
package randmodel

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// Shape is a model's architecture hyper-parameters.
type Shape struct {
	Name          string
	Layers        int
	Embedding     int
	Heads         int
	KVHeads       int
	FeedForward   int
	Vocab         int // output rows; 0 = the tokenizer's size
	ContextLength int
	RopeFreqBase  float32
	// TiedEmbeddings: no output.weight; llama.cpp reuses token_embd
	// (Llama-3.2-1B does this).
	TiedEmbeddings bool
}

// shapes are the real models codeplan targets, plus "toy" for tests: two
// small layers, with the vocabulary of whatever tokenizer is given.
var shapes = map[string]Shape{
	"llama3-8b":  {Name: "llama3-8b", Layers: 32, Embedding: 4096, Heads: 32, KVHeads: 8, FeedForward: 14336, Vocab: 128256, ContextLength: 8192, RopeFreqBase: 500000},
	"mistral-7b": {Name: "mistral-7b", Layers: 32, Embedding: 4096, Heads: 32, KVHeads: 8, FeedForward: 14336, Vocab: 32000, ContextLength: 32768, RopeFreqBase: 10000},
	"1b":         {Name: "1b", Layers: 16, Embedding: 2048, Heads: 32, KVHeads: 8, FeedForward: 8192, Vocab: 128256, ContextLength: 131072, RopeFreqBase: 500000, TiedEmbeddings: true},
	"toy":        {Name: "toy", Layers: 2, Embedding: 64, Heads: 4, KVHeads: 2, FeedForward: 128, ContextLength: 4096, RopeFreqBase: 500000},
}

// Names lists the known shapes.
func Names() []string {
	out := make([]string, 0, len(shapes))
	for n := range shapes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the named shape.
func Lookup(name string) (Shape, error) {
	s, ok := shapes[name]
	if !ok {
		return Shape{}, fmt.Errorf("randmodel: unknown shape %q (want one of %v)", name, Names())
	}
	return s, nil
}

// Options choose the weight type, the vocabulary and the seed.
type Options struct {
	// Type of the matrices: F16, Q8_0 or Q4_0 (norm weights are F32).
	Type gguf.TensorType
	// Vocab, if set, is the real tokenizer (padded to Shape.Vocab). Without
	// it the model gets a byte vocabulary with ChatML control tokens, padded
	// with unused tokens to Shape.Vocab.
	Vocab *hfvocab.Vocab
	Seed  uint64
	// Zero leaves every matrix zero, written as holes in the file: an 8B
	// model in milliseconds and no disk space, for checks that need only
	// the shapes (graphs built with llama.ModelOptions.NoAlloc). Such a
	// model computes nothing useful.
	Zero bool
}

var fileTypes = map[gguf.TensorType]uint32{gguf.TensorF16: 1, gguf.TensorQ4_0: 2, gguf.TensorQ8_0: 7}

// ParseType maps "f16", "q8_0", "q4_0" to a tensor type.
func ParseType(s string) (gguf.TensorType, error) {
	switch s {
	case "f16", "F16":
		return gguf.TensorF16, nil
	case "q8_0", "Q8_0":
		return gguf.TensorQ8_0, nil
	case "q4_0", "Q4_0":
		return gguf.TensorQ4_0, nil
	}
	return 0, fmt.Errorf("randmodel: type %q: want f16, q8_0 or q4_0", s)
}

// tensor is one tensor of the model: name, ne shape, and whether it is a
// matrix (stored as Options.Type) or a norm vector (F32 ones).
type tensor struct {
	name  string
	shape []uint64
}

// tensors lists the model's tensors in file order for vocabulary size nv.
func (s Shape) tensors(nv int) []tensor {
	e, f := uint64(s.Embedding), uint64(s.FeedForward)
	kv := uint64(s.Embedding / s.Heads * s.KVHeads)
	v := uint64(nv)
	ts := []tensor{{"token_embd.weight", []uint64{e, v}}}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tensor{p + "attn_norm.weight", []uint64{e}},
			tensor{p + "attn_q.weight", []uint64{e, e}},
			tensor{p + "attn_k.weight", []uint64{e, kv}},
			tensor{p + "attn_v.weight", []uint64{e, kv}},
			tensor{p + "attn_output.weight", []uint64{e, e}},
			tensor{p + "ffn_norm.weight", []uint64{e}},
			tensor{p + "ffn_gate.weight", []uint64{e, f}},
			tensor{p + "ffn_up.weight", []uint64{e, f}},
			tensor{p + "ffn_down.weight", []uint64{f, e}},
		)
	}
	ts = append(ts, tensor{"output_norm.weight", []uint64{e}})
	if !s.TiedEmbeddings {
		ts = append(ts, tensor{"output.weight", []uint64{e, v}})
	}
	return ts
}

// Params counts the parameters for vocabulary size nv (Shape.Vocab when 0).
func (s Shape) Params(nv int) uint64 {
	if nv == 0 {
		nv = s.Vocab
	}
	var n uint64
	for _, t := range s.tensors(nv) {
		n += elems(t.shape)
	}
	return n
}

// DataBytes is the size of the tensor data (each tensor padded to the GGUF
// alignment) for matrices of type typ: the file is this plus its header.
func (s Shape) DataBytes(nv int, typ gguf.TensorType) uint64 {
	if nv == 0 {
		nv = s.Vocab
	}
	var n uint64
	for _, t := range s.tensors(nv) {
		n += (tensorBytes(t.shape, typ) + gguf.DefaultAlignment - 1) / gguf.DefaultAlignment * gguf.DefaultAlignment
	}
	return n
}

func elems(shape []uint64) uint64 {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func tensorBytes(shape []uint64, typ gguf.TensorType) uint64 {
	n := elems(shape)
	if len(shape) == 1 {
		return 4 * n
	}
	switch typ {
	case gguf.TensorF16:
		return 2 * n
	case gguf.TensorQ8_0:
		return n / 32 * 34
	case gguf.TensorQ4_0:
		return n / 32 * 18
	}
	return 4 * n
}

func (s Shape) validate() error {
	if s.Layers <= 0 || s.Embedding <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.FeedForward <= 0 {
		return fmt.Errorf("randmodel: shape %q has a zero dimension", s.Name)
	}
	if s.Embedding%s.Heads != 0 || s.Heads%s.KVHeads != 0 || (s.Embedding/s.Heads)%2 != 0 {
		return fmt.Errorf("randmodel: shape %q: embedding %d, heads %d, kv heads %d do not divide", s.Name, s.Embedding, s.Heads, s.KVHeads)
	}
	if s.Embedding%32 != 0 || s.FeedForward%32 != 0 {
		return fmt.Errorf("randmodel: shape %q: embedding and feed-forward sizes must be multiples of 32 (the quantization block)", s.Name)
	}
	return nil
}

// Write writes the model to path atomically (temporary file, then rename).
// Memory stays at a few megabytes per CPU whatever the model's size.
func Write(path string, s Shape, opts Options) error {
	if err := s.validate(); err != nil {
		return err
	}
	ftype, ok := fileTypes[opts.Type]
	if !ok {
		return fmt.Errorf("randmodel: matrices of type %s are not supported (want F16, Q8_0 or Q4_0)", opts.Type)
	}
	w := gguf.NewLlamaWriter(gguf.LlamaHeader{
		Name: "codeplan-random-" + s.Name, FileType: ftype, ContextLength: s.ContextLength, Embedding: s.Embedding,
		Layers: s.Layers, FeedForward: s.FeedForward, Heads: s.Heads, KVHeads: s.KVHeads,
		RopeFreqBase: s.RopeFreqBase, RMSEpsilon: 1e-5,
	})

	nv, err := applyVocab(w, s, opts.Vocab)
	if err != nil {
		return err
	}
	w.SetUint32("llama.vocab_size", uint32(nv))
	g := newGenerator()
	for _, t := range s.tensors(nv) {
		t := t
		if len(t.shape) == 1 {
			ones := make([]float32, t.shape[0])
			for i := range ones {
				ones[i] = 1
			}
			if err := w.AddF32(t.name, t.shape, ones); err != nil {
				return err
			}
			continue
		}
		if opts.Zero {
			if err := w.AddZeroTensor(t.name, opts.Type, t.shape); err != nil {
				return err
			}
			continue
		}
		// 1/sqrt(in) keeps every product's output near unit scale, and
		// for a tied embedding keeps the logits moderate too.
		std := 1 / math.Sqrt(float64(t.shape[0]))
		fill := func(out io.Writer) error {
			return g.fill(out, opts.Type, elems(t.shape), std, opts.Seed, t.name)
		}
		if err := w.AddTensorFunc(t.name, opts.Type, t.shape, fill); err != nil {
			return err
		}
	}
	return w.WriteFile(path)
}

// applyVocab writes the vocabulary and returns its size.
func applyVocab(w *gguf.Writer, s Shape, v *hfvocab.Vocab) (int, error) {
	if v != nil {
		if s.Vocab > 0 {
			if err := v.PadTo(s.Vocab); err != nil {
				return 0, fmt.Errorf("randmodel: shape %s: %w", s.Name, err)
			}
		}
		v.Apply(w)
		return v.Len(), nil
	}
	// The tiny model's byte vocabulary (exact round trips, ChatML), padded
	// with unused tokens as convert_hf_to_gguf pads a short tokenizer.
	toks, types := tiny.Tokens(), tiny.TokenTypes()
	n := max(s.Vocab, len(toks))
	for i := len(toks); i < n; i++ {
		toks = append(toks, fmt.Sprintf("[PAD%d]", i))
		types = append(types, hfvocab.TypeUnused)
	}
	w.SetString("tokenizer.ggml.model", "gpt2")
	w.SetString("tokenizer.ggml.pre", "qwen2")
	w.SetStrings("tokenizer.ggml.tokens", toks)
	w.SetInt32s("tokenizer.ggml.token_type", types)
	w.SetStrings("tokenizer.ggml.merges", []string{})
	w.SetUint32("tokenizer.ggml.bos_token_id", tiny.TokenEndOfText)
	w.SetUint32("tokenizer.ggml.eos_token_id", tiny.TokenIMEnd)
	w.SetUint32("tokenizer.ggml.padding_token_id", tiny.TokenEndOfText)
	w.SetBool("tokenizer.ggml.add_bos_token", false)
	w.SetString("tokenizer.chat_template", tiny.ChatTemplate)
	return n, nil
}

// chunkBlocks is how many 32-value blocks one worker generates at a time
// (1M values: 0.5-2 MB of output).
const chunkBlocks = 1 << 15

// generator holds one output buffer per worker, reused for every tensor,
// so writing a model allocates a few megabytes in all.
type generator struct{ bufs [][]byte }

func newGenerator() *generator {
	g := &generator{bufs: make([][]byte, runtime.GOMAXPROCS(0))}
	for i := range g.bufs {
		g.bufs[i] = make([]byte, 0, chunkBlocks*64) // 64: F16's bytes per block
	}
	return g
}

// fill streams n random values of standard deviation about std, in
// type typ, to out. The blocks are drawn directly in the quantized layout
// (a fixed scale and uniform random quants), which is as costly to compute
// with as real weights and much faster to make than quantizing floats.
// Chunks are generated in parallel, each from its own stream keyed by seed,
// tensor name and chunk index, so the bytes do not depend on the CPU count.
func (g *generator) fill(out io.Writer, typ gguf.TensorType, n uint64, std float64, seed uint64, name string) error {
	h := fnv.New64a()
	h.Write([]byte(name))
	base := seed ^ h.Sum64()
	blocks := n / 32
	chunks := (blocks + chunkBlocks - 1) / chunkBlocks
	bufs := g.bufs
	workers := len(bufs)
	for c := uint64(0); c < chunks; c += uint64(workers) {
		var wg sync.WaitGroup
		for j := 0; j < workers && c+uint64(j) < chunks; j++ {
			idx := c + uint64(j)
			nb := min(uint64(chunkBlocks), blocks-idx*chunkBlocks)
			wg.Add(1)
			go func(j int) {
				defer wg.Done()
				bufs[j] = genBlocks(bufs[j][:0], typ, nb, std, base+idx*0x9e3779b97f4a7c15)
			}(j)
		}
		wg.Wait()
		for j := 0; j < workers && c+uint64(j) < chunks; j++ {
			if _, err := out.Write(bufs[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Standard deviations of the uniform quants: Q4_0 stores q-8 for q in
// 0..15, Q8_0 stores an int8.
const (
	q4Std = 4.6097722286464435 // sqrt((16²-1)/12)
	q8Std = 73.900157239302    // sqrt((256²-1)/12)
)

// genBlocks appends nb blocks of typ to dst.
func genBlocks(dst []byte, typ gguf.TensorType, nb uint64, std float64, state uint64) []byte {
	r := splitmix(state)
	switch typ {
	case gguf.TensorQ4_0:
		d := gguf.Float32ToF16(float32(std / q4Std))
		for b := uint64(0); b < nb; b++ {
			dst = binary.LittleEndian.AppendUint16(dst, d)
			dst = binary.LittleEndian.AppendUint64(dst, r.next())
			dst = binary.LittleEndian.AppendUint64(dst, r.next())
		}
	case gguf.TensorQ8_0:
		d := gguf.Float32ToF16(float32(std / q8Std))
		for b := uint64(0); b < nb; b++ {
			dst = binary.LittleEndian.AppendUint16(dst, d)
			for i := 0; i < 4; i++ {
				dst = binary.LittleEndian.AppendUint64(dst, r.next())
			}
		}
	case gguf.TensorF16:
		// 256 evenly spaced half-precision values spanning ±std·√3 (a
		// uniform distribution of that standard deviation), picked by
		// random bytes.
		var table [256]uint16
		a := std * math.Sqrt(3)
		for i := range table {
			table[i] = gguf.Float32ToF16(float32(a * (float64(i) + 0.5 - 128) / 128))
		}
		for b := uint64(0); b < nb; b++ {
			for i := 0; i < 4; i++ {
				x := r.next()
				for k := 0; k < 8; k++ {
					dst = binary.LittleEndian.AppendUint16(dst, table[byte(x>>(8*k))])
				}
			}
		}
	}
	return dst
}

// rng is splitmix64: fast and fully specified, so the bytes are the same on
// every platform.
type rng struct{ state uint64 }

func splitmix(seed uint64) *rng { r := &rng{seed}; r.next(); return r }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
