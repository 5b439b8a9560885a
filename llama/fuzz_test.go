package llama_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
)

// FuzzLoadModel corrupts the tiny model (its start overwritten by head, one
// byte at pos xor val) and loads, creates a context and decodes: every
// outcome must be a Go error or a working model, never an abort in C. The
// files under testdata/fuzz/FuzzLoadModel are inputs that once aborted
// llama.cpp (zero block_count, duplicate tokens, a negative epsilon, an
// alignment of 2); checkHeader in model.go now rejects them first.
//
//	go test -run '^$' -fuzz FuzzLoadModel -fuzztime 5m ./llama/
func FuzzLoadModel(f *testing.F) {
	good, err := os.ReadFile(tinyPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:4096], 100, byte(7))
	f.Fuzz(func(t *testing.T, head []byte, pos int, val byte) {
		data := append([]byte{}, good...)
		copy(data, head)
		if pos >= 0 && pos < len(data) {
			data[pos] ^= val
		}
		p := filepath.Join(t.TempDir(), "m.gguf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := llama.LoadModel(p, llama.ModelOptions{})
		if err != nil {
			return
		}
		defer m.Close()
		ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
		if err != nil {
			return
		}
		defer ctx.Close()
		b, _ := llama.NewBatch(8, 1)
		defer b.Close()
		b.Add(65, 0, 0, true)
		_ = ctx.Decode(b)
	})
}
