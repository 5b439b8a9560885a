// Package testmodel gives tests the tiny random-weight model (llama/tiny),
// so that every package's tests load it the same way.
package testmodel

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
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
	m, err := llama.LoadModel(path, llama.ModelOptions{})
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
	(*model).Close()
	os.Exit(code)
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
// $CODEPLAN_TOKENIZERS or .cache/tokenizers at the repository root. The test
// is skipped, saying how to fetch it, when it is absent (CI fetches it).
func Tokenizer(t testing.TB, name string) string {
	t.Helper()
	dir := TokenizerCache()
	p := filepath.Join(dir, name)
	if _, err := os.Stat(filepath.Join(p, "models", "tokenizer.json")); err != nil {
		t.Skipf("tokenizer %s not in %s: run scripts/fetch-tokenizers.sh", name, dir)
	}
	return p
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
