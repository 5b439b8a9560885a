package llama_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// FuzzLoadAdapter corrupts two bytes of a tiny LoRA adapter and loads,
// attaches and decodes with it: a Go error or a working adapter, never a
// crash. The seeds under testdata/fuzz/FuzzLoadAdapter once hung (a 20 GB
// string length), aborted (a mistyped key), divided by zero (a zero rank) or
// jumped to a null kernel (an integer tensor type) inside llama.cpp.
func FuzzLoadAdapter(f *testing.F) {
	dir := f.TempDir()
	ap := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(ap, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 4, Seed: 1}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(ap)
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx.Close()
		if err := m.Close(); err != nil {
			f.Error(err)
		}
	})
	f.Add(100, byte(7), 200, byte(1))
	f.Fuzz(func(t *testing.T, p1 int, v1 byte, p2 int, v2 byte) {
		data := append([]byte{}, good...)
		for _, pv := range [][2]int{{p1, int(v1)}, {p2, int(v2)}} {
			if pv[0] >= 0 && pv[0] < len(data) {
				data[pv[0]] ^= byte(pv[1])
			}
		}
		p := filepath.Join(t.TempDir(), "a.gguf")
		os.WriteFile(p, data, 0o644)
		a, err := m.LoadAdapter(p)
		if err != nil {
			return
		}
		if ctx.SetAdapter(a, 1) == nil {
			b, _ := llama.NewBatch(4, 1)
			b.Add(65, 0, 0, true)
			ctx.Decode(b)
			b.Close()
			ctx.ClearKV()
			ctx.ClearAdapters()
		}
		a.Close()
	})
}
