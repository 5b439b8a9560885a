// Package testmodel gives tests the tiny random-weight model (llama/tiny),
// so that every package's tests load it the same way.
package testmodel

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/randmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// Path writes the tiny model if needed and returns its path.
func Path(t testing.TB) string {
	t.Helper()
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Load loads the tiny model for one test and closes it when the test ends.
func Load(t testing.TB) *llama.Model {
	t.Helper()
	return LoadFile(t, Path(t))
}

// LoadFile loads the model at path for one test and closes it when the test
// ends (for variants of the tiny model written by the test).
func LoadFile(t testing.TB, path string) *llama.Model {
	t.Helper()
	return load(t, path, llama.ModelOptions{})
}

// LoadWritable loads the model at path with its weights in memory, as full
// training needs (mapped weights are read-only), and closes it when the test
// ends.
func LoadWritable(t testing.TB, path string) *llama.Model {
	t.Helper()
	return load(t, path, llama.ModelOptions{NoMmap: true})
}

// Main is a TestMain body: it loads the tiny model into *model, runs the
// tests, closes the model and exits with the tests' status.
func Main(m *testing.M, model **llama.Model) {
	p, err := tiny.DefaultPath()
	if err == nil {
		*model, err = llama.LoadModel(p, llama.ModelOptions{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiny model:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*model).Close(); err != nil {
		// Something a test made from the model is still open.
		fmt.Fprintln(os.Stderr, "tiny model:", err)
		code = max(code, 1)
	}
	os.Exit(CheckLeaks(code))
}

// CheckLeaks collects garbage and, in builds with -tags invariants, prints
// every llama object (Context, Sampler, Batch) that was collected without
// Close; it returns code, or 1 if there were such leaks. Call it at the end
// of a TestMain.
func CheckLeaks(code int) int {
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
	}
	leaks := llama.Leaks()
	for _, l := range leaks {
		fmt.Fprintln(os.Stderr, "leak:", l)
	}
	if len(leaks) > 0 {
		return max(code, 1)
	}
	return code
}

// LastLogits decodes toks at positions start.. of sequence seq and returns
// a copy of the logits after the last one.
func LastLogits(t testing.TB, ctx *llama.Context, seq llama.SeqID, start int, toks []llama.Token) []float32 {
	t.Helper()
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range toks {
		if _, err := b.Add(tok, llama.Pos(start+i), seq, i == len(toks)-1); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	l, err := ctx.Logits(len(toks)-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// MaxDiff is the largest absolute difference between a and b.
func MaxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// Tokenizer returns the folder of a real tokenizer fetched by
// scripts/fetch-tokenizers.sh ("llama3" or "llama2"), from
// $CODEPLAN_TOKENIZERS or .cache/tokenizers at the repository root. When it
// is absent the test is skipped, saying how to fetch it, except in CI
// (SkipOrFailInCI), which fetches it.
func Tokenizer(t testing.TB, name string) string {
	t.Helper()
	dir := TokenizerCache()
	p := filepath.Join(dir, name)
	if _, err := os.Stat(filepath.Join(p, "models", "tokenizer.json")); err != nil {
		SkipOrFailInCI(t, "tokenizer %s not in %s: run scripts/fetch-tokenizers.sh", name, dir)
	}
	return p
}

// InCI reports whether the tests run in CI: the environment variable CI is
// "true", as GitHub Actions, GitLab CI and most others set it.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFailInCI skips the test with the message, except in CI (InCI),
// where the test fails instead: a test that CI is set up to run (the
// real-tokenizer checks) must not pass by skipping there.
func SkipOrFailInCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true, so this test must not skip: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// TokenizerCache is the folder scripts/fetch-tokenizers.sh fills.
func TokenizerCache() string {
	if d := os.Getenv("CODEPLAN_TOKENIZERS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ".cache/tokenizers"
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".cache", "tokenizers")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, ".cache", "tokenizers")
		}
	}
}

// Llama3EOT is <|eot_id|>, Llama-3's end of turn.
const Llama3EOT = 128009

// Llama3Model writes a small random model (randmodel's toy shape, F16) with
// the real Llama-3 tokenizer into a test folder and returns its path. It is
// skipped when the tokenizer is not fetched. With stopAtEOT its weights are
// set so that greedy decoding always picks <|eot_id|>: dimension 0 of every
// token embedding is large, no layer writes to it, and only <|eot_id|>'s
// output row reads it. That makes "generation ends at the end-of-turn
// token" observable on a random model.
func Llama3Model(t testing.TB, stopAtEOT bool) string {
	t.Helper()
	v, err := hfvocab.Load(Tokenizer(t, "llama3"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := randmodel.Lookup("toy")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "llama3-toy.gguf")
	if err := randmodel.Write(path, s, randmodel.Options{Type: gguf.TensorF16, Vocab: v, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if !stopAtEOT {
		return path
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	set := func(name string, idx []uint64, v float32) {
		ti, ok := f.Tensor(name)
		if !ok || ti.Type != gguf.TensorF16 {
			t.Fatalf("tensor %s: %v %s", name, ok, ti.Type)
		}
		b := []byte{0, 0}
		h := gguf.Float32ToF16(v)
		b[0], b[1] = byte(h), byte(h>>8)
		for _, i := range idx {
			if _, err := out.WriteAt(b, int64(ti.FileOffset+2*i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := uint64(s.Embedding)
	span := func(from, n, stride uint64) []uint64 {
		var out []uint64
		for i := uint64(0); i < n; i++ {
			out = append(out, from+i*stride)
		}
		return out
	}
	set("token_embd.weight", span(0, uint64(v.Len()), e), 8)
	for l := 0; l < s.Layers; l++ {
		set(fmt.Sprintf("blk.%d.attn_output.weight", l), span(0, e, 1), 0)
		set(fmt.Sprintf("blk.%d.ffn_down.weight", l), span(0, uint64(s.FeedForward), 1), 0)
	}
	set("output.weight", []uint64{Llama3EOT * e}, 50)
	return path
}

// load loads the model at path with opts and closes it when the test ends.
func load(t testing.TB, path string, opts llama.ModelOptions) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}
