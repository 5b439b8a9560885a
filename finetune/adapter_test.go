package finetune

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// writeTinyAs writes the tiny model with every matrix stored as typ.
func writeTinyAs(t testing.TB, typ gguf.TensorType) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny-"+typ.String()+".gguf")
	if err := tiny.WriteAs(p, tiny.DefaultConfig(), typ); err != nil {
		t.Fatal(err)
	}
	return p
}

// lastLogits decodes toks and returns the logits of the last position.
func lastLogits(t testing.TB, m *llama.Model, a *llama.Adapter, toks []llama.Token) []float32 {
	t.Helper()
	c, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a != nil {
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
		defer c.ClearAdapters()
	}
	return testmodel.LastLogits(t, c, 0, 0, toks)
}

func maxAbsDiff(a, b []float32) float64 { return testmodel.MaxDiff(a, b) }

func TestSavedAdapterMatchesInMemory(t *testing.T) {
	m := loadModel(t, tinyPath)
	base, err := InspectBase(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	meta := adapterMeta{base: base, alpha: 8, rank: 4, targets: Targets}
	init, err := initialAdapter(base, 4, Targets, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAdapter(filepath.Join(dir, "init.gguf"), meta, init); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(filepath.Join(dir, "init.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tr, err := m.NewTrainer(a, llama.TrainerOptions{Threads: 1, MaxTokens: 256})
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := m.Tokenize("Plan:\n```python\nreturn add(1, 2)\n```\nAnswer:\n3", false, true)
	var b llama.TrainBatch
	n, _ := b.Add(toks, 3)
	for s := 1; s <= 5; s++ {
		tr.ZeroGrad()
		if _, err := tr.Accumulate(&b, 1/float32(n)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Update(llama.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(s)}); err != nil {
			t.Fatal(err)
		}
	}
	trained, err := trainedTensors(tr)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "trained.gguf")
	if err := writeAdapter(saved, meta, trained); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := m.LoadAdapter(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	probe := toks[:10]
	inMemory := lastLogits(t, m, a, probe)
	reloaded := lastLogits(t, m, r, probe)
	plain := lastLogits(t, m, nil, probe)
	if d := maxAbsDiff(inMemory, reloaded); d != 0 {
		t.Errorf("reloaded adapter logits differ from the in-memory one by %g", d)
	}
	if d := maxAbsDiff(inMemory, plain); d < 1e-3 {
		t.Errorf("training changed the logits by only %g", d)
	}
}

func TestMerge(t *testing.T) {
	// an adapter with random A and B, so that every matrix changes
	lp := filepath.Join(t.TempDir(), "lora.gguf")
	if err := tiny.WriteLoRA(lp, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: Targets, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ gguf.TensorType
		tol float64
	}{{gguf.TensorF32, 1e-3}, {gguf.TensorF16, 0.1}} {
		t.Run(c.typ.String(), func(t *testing.T) {
			basePath := tinyPath
			if c.typ != gguf.TensorF32 {
				basePath = writeTinyAs(t, c.typ)
			}
			out := filepath.Join(t.TempDir(), "merged.gguf")
			st, err := Merge(basePath, lp, out, 1)
			if err != nil {
				t.Fatal(err)
			}
			if st.Tensors != 7*tiny.DefaultConfig().Layers || st.Scale != 2 {
				t.Errorf("merge stats %+v", st)
			}
			bst, _ := os.Stat(basePath)
			mst, _ := os.Stat(out)
			if bst.Size() != mst.Size() {
				t.Errorf("merged file is %d bytes, base %d", mst.Size(), bst.Size())
			}
			m := loadModel(t, basePath)
			a, err := m.LoadAdapter(lp)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			mm := loadModel(t, out)
			toks, _ := m.Tokenize("<|im_start|>user\nmerge me<|im_end|>\n", false, true)
			want := lastLogits(t, m, a, toks)
			got := lastLogits(t, mm, nil, toks)
			plain := lastLogits(t, m, nil, toks)
			d, moved := maxAbsDiff(want, got), maxAbsDiff(want, plain)
			t.Logf("%s: merged vs base+adapter %g (adapter moves logits by %g)", c.typ, d, moved)
			if d > c.tol || moved < 10*d {
				t.Errorf("merged logits differ by %g from base+adapter (adapter effect %g)", d, moved)
			}
		})
	}
	q := writeTinyAs(t, gguf.TensorQ8_0)
	if _, err := Merge(q, lp, filepath.Join(t.TempDir(), "m.gguf"), 1); err == nil {
		t.Error("merge into a Q8_0 base accepted")
	}
	if _, err := Merge(tinyPath, lp, tinyPath, 1); err == nil {
		t.Error("merge over the base itself accepted")
	}
}

func BenchmarkTrainTokensPerSecond(b *testing.B) {
	m := loadModel(b, tinyPath)
	base, err := InspectBase(tinyPath)
	if err != nil {
		b.Fatal(err)
	}
	init, _ := initialAdapter(base, 8, Targets, 1)
	p := filepath.Join(b.TempDir(), "a.gguf")
	if err := writeAdapter(p, adapterMeta{base: base, alpha: 16, rank: 8, targets: Targets}, init); err != nil {
		b.Fatal(err)
	}
	a, err := m.LoadAdapter(p)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tr, err := m.NewTrainer(a, llama.TrainerOptions{Threads: 1, MaxTokens: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	toks, _ := m.Tokenize(strings.Repeat("The plan: add the numbers, then answer. ", 3), false, true)
	var batch llama.TrainBatch
	for batch.Len()+len(toks) <= 512 {
		batch.Add(toks, len(toks)/3)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.ZeroGrad()
		if _, err := tr.Accumulate(&batch, 1e-3); err != nil {
			b.Fatal(err)
		}
		if err := tr.Update(llama.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch.Len()*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
