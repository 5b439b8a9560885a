package llama_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

var tinyPath string

func TestMain(m *testing.M) {
	p, err := tiny.DefaultPath()
	if err != nil {
		panic(err)
	}
	tinyPath = p
	os.Exit(testmodel.CheckLeaks(m.Run()))
}

func loadTiny(t testing.TB) *llama.Model { return testmodel.LoadFile(t, tinyPath) }

func newCtx(t testing.TB, m *llama.Model, opts llama.ContextOptions) *llama.Context {
	t.Helper()
	if opts.Threads == 0 {
		// Test binaries run in parallel on small CI machines; ggml's
		// spinning worker threads slow down badly when oversubscribed.
		opts.Threads = 1
	}
	c, err := m.NewContext(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestModelInfo(t *testing.T) {
	m := loadTiny(t)
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tiny.DefaultConfig()
	if info.Architecture != "llama" {
		t.Errorf("architecture %q", info.Architecture)
	}
	if info.Layers != cfg.Layers || info.EmbeddingLength != cfg.Embedding || info.Heads != cfg.Heads {
		t.Errorf("shape %+v vs config %+v", info, cfg)
	}
	if info.ContextLength != cfg.ContextLength {
		t.Errorf("context length %d, want %d", info.ContextLength, cfg.ContextLength)
	}
	if info.VocabSize != 259 || info.VocabType != "bpe" {
		t.Errorf("vocab %d %s", info.VocabSize, info.VocabType)
	}
	if info.Params == 0 || info.SizeBytes < info.Params*4 {
		t.Errorf("params %d size %d", info.Params, info.SizeBytes)
	}
	if !strings.Contains(info.ChatTemplate, "<|im_start|>") {
		t.Errorf("chat template %q", info.ChatTemplate)
	}
	if v, ok := m.Meta("general.architecture"); !ok || v != "llama" {
		t.Errorf("Meta = %q %v", v, ok)
	}
	if _, ok := m.Meta("no.such.key"); ok {
		t.Error("missing key reported present")
	}
	if eos, err := m.EOS(); err != nil || !m.IsEOG(eos) || m.IsEOG(65) {
		t.Error("EOG detection")
	}
}

func TestTokenizeRoundTrip(t *testing.T) {
	m := loadTiny(t)
	for _, text := range []string{
		"Hello, world!",
		"def plan():\n    for x in items:\n        if x > 0: yield x\n",
		"Grüße, 世界 — naïve café 🙂",
		"",
	} {
		toks, err := m.Tokenize(text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != len(text) { // byte-level vocabulary: one token per byte
			t.Errorf("%q: %d tokens for %d bytes", text, len(toks), len(text))
		}
		back, err := m.Detokenize(toks, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if back != text {
			t.Errorf("round trip %q -> %q", text, back)
		}
	}
	// Special tokens are parsed only when asked.
	special, _ := m.Tokenize("<|im_end|>", false, true)
	plain, _ := m.Tokenize("<|im_end|>", false, false)
	if eos, _ := m.EOS(); len(special) != 1 || special[0] != eos || len(plain) != len("<|im_end|>") {
		t.Errorf("special %v plain %v", special, plain)
	}
	if _, err := m.Detokenize([]llama.Token{5, 9999}, false, false); err == nil {
		t.Error("out-of-vocabulary token accepted")
	}
}

func TestApplyTemplate(t *testing.T) {
	m := loadTiny(t)
	got, err := m.ApplyTemplate([]llama.ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("got %q", got)
	}
	_, err = llama.ApplyTemplateString("{{ totally unknown template }}", []llama.ChatMessage{{Role: "user", Content: "x"}}, true)
	if !errors.Is(err, llama.ErrUnsupportedTemplate) {
		t.Errorf("unknown template: %v", err)
	}
	if got, err := llama.ApplyTemplateString("llama3", []llama.ChatMessage{{Role: "user", Content: "x"}}, true); err != nil || !strings.Contains(got, "<|start_header_id|>user") {
		t.Errorf("llama3 builtin: %q %v", got, err)
	}
}

// greedy decodes n tokens after prompt on sequence seq of ctx.
func greedy(t testing.TB, m *llama.Model, ctx *llama.Context, prompt string, n int) []llama.Token {
	t.Helper()
	toks, err := m.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := llama.NewBatch(ctx.BatchSize(), 1)
	defer b.Close()
	for i, tk := range toks {
		if _, err := b.Add(tk, llama.Pos(i), 0, i == len(toks)-1); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := llama.NewSampler(m, llama.SamplerOptions{})
	defer s.Close()
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	idx := len(toks) - 1
	var out []llama.Token
	for i := 0; i < n; i++ {
		tk, err := s.Sample(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tk)
		b.Clear()
		b.Add(tk, llama.Pos(len(toks)+i), 0, true)
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
		idx = 0
	}
	return out
}

func TestGreedyDeterministic(t *testing.T) {
	m := loadTiny(t)
	c1 := newCtx(t, m, llama.ContextOptions{ContextSize: 256})
	a := greedy(t, m, c1, "The plan is", 48)
	c1.ClearKV()
	b := greedy(t, m, c1, "The plan is", 48)
	// A second context with its own sleeping (poll 0) two-thread pool must
	// give the same tokens.
	zero := 0
	c2 := newCtx(t, m, llama.ContextOptions{ContextSize: 256, Threads: 2, Poll: &zero})
	c := greedy(t, m, c2, "The plan is", 48)
	if !equalTokens(a, b) || !equalTokens(a, c) {
		t.Fatalf("greedy differs:\n%v\n%v\n%v", a, b, c)
	}
	distinct := map[llama.Token]bool{}
	for _, tk := range a {
		distinct[tk] = true
	}
	if len(distinct) < 3 {
		t.Errorf("degenerate output %v", a)
	}
	if p := c1.Perf(); p.GeneratedTokens == 0 || p.PromptTokens == 0 {
		t.Errorf("perf counters %+v", p)
	}
}

func equalTokens(a, b []llama.Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParallelMatchesSequential decodes 8 prompts together in one context
// and compares with decoding each alone.
func TestParallelMatchesSequential(t *testing.T) {
	m := loadTiny(t)
	prompts := []string{"alpha", "def f(x):", "Question: 2+2?", "plan = []", "for i in range(3):", "Hello", "The answer is", "if ready:"}
	const n = 24
	want := make([][]llama.Token, len(prompts))
	solo := newCtx(t, m, llama.ContextOptions{ContextSize: 256})
	for i, p := range prompts {
		solo.ClearKV()
		want[i] = greedy(t, m, solo, p, n)
	}
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 2048, Sequences: len(prompts)})
	b, _ := llama.NewBatch(512, 1)
	defer b.Close()
	pos := make([]int, len(prompts))
	idx := make([]int, len(prompts))
	samplers := make([]*llama.Sampler, len(prompts))
	for i, p := range prompts {
		toks, _ := m.Tokenize(p, true, false)
		for j, tk := range toks {
			k, err := b.Add(tk, llama.Pos(j), llama.SeqID(i), j == len(toks)-1)
			if err != nil {
				t.Fatal(err)
			}
			idx[i] = k
		}
		pos[i] = len(toks)
		samplers[i], _ = llama.NewSampler(m, llama.SamplerOptions{})
		defer samplers[i].Close()
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	got := make([][]llama.Token, len(prompts))
	for step := 0; step < n; step++ {
		next := make([]llama.Token, len(prompts))
		for i := range prompts {
			tk, err := samplers[i].Sample(ctx, idx[i])
			if err != nil {
				t.Fatal(err)
			}
			got[i] = append(got[i], tk)
			next[i] = tk
		}
		b.Clear()
		for i := range prompts {
			idx[i], _ = b.Add(next[i], llama.Pos(pos[i]), llama.SeqID(i), true)
			pos[i]++
		}
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range prompts {
		if !equalTokens(got[i], want[i]) {
			t.Errorf("prompt %q: parallel %v, alone %v", prompts[i], got[i], want[i])
		}
	}
}

func logitsAfter(t testing.TB, _ *llama.Model, ctx *llama.Context, seq llama.SeqID, start int, toks []llama.Token) []float32 {
	return testmodel.LastLogits(t, ctx, seq, start, toks)
}

func maxDiff(a, b []float32) float64 { return testmodel.MaxDiff(a, b) }

func TestKVCacheOps(t *testing.T) {
	m := loadTiny(t)
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 512, Sequences: 4})
	prefix, _ := m.Tokenize("shared prefix: ", false, false)
	tail, _ := m.Tokenize("xyz", false, false)
	other, _ := m.Tokenize("abc", false, false)

	// Reference: prefix+tail decoded from scratch on sequence 0.
	ref := logitsAfter(t, m, ctx, 0, 0, append(append([]llama.Token{}, prefix...), tail...))
	if n, _ := ctx.SeqLen(0); n != len(prefix)+len(tail) {
		t.Fatalf("SeqLen = %d", n)
	}

	// Remove the tail and decode a different one: must match a fresh decode.
	if err := ctx.RemoveTokens(0, llama.Pos(len(prefix)), -1); err != nil {
		t.Fatal(err)
	}
	if n, _ := ctx.SeqLen(0); n != len(prefix) {
		t.Fatalf("after remove SeqLen = %d, want %d", n, len(prefix))
	}
	gotOther := logitsAfter(t, m, ctx, 0, len(prefix), other)
	ctx.ClearKV()
	wantOther := logitsAfter(t, m, ctx, 0, 0, append(append([]llama.Token{}, prefix...), other...))
	if d := maxDiff(gotOther, wantOther); d > 1e-3 {
		t.Errorf("after remove: logits differ by %g", d)
	}

	// Copy the prefix to sequence 1 and continue there: same as the reference.
	ctx.ClearKV()
	logitsAfter(t, m, ctx, 0, 0, prefix)
	if err := ctx.CopySeq(0, 1, -1, -1); err != nil {
		t.Fatal(err)
	}
	if n, _ := ctx.SeqLen(1); n != len(prefix) {
		t.Fatalf("copied SeqLen = %d", n)
	}
	viaCopy := logitsAfter(t, m, ctx, 1, len(prefix), tail)
	if d := maxDiff(viaCopy, ref); d > 1e-3 {
		t.Errorf("after copy: logits differ by %g", d)
	}
	// Keep only sequence 1.
	if err := ctx.KeepSeq(1); err != nil {
		t.Fatal(err)
	}
	if n, _ := ctx.SeqLen(0); n != 0 {
		t.Errorf("sequence 0 still has %d tokens after KeepSeq(1)", n)
	}
	if err := ctx.RemoveSeq(9); err == nil {
		t.Error("sequence id out of range accepted")
	}
}

func TestGrammarConstrains(t *testing.T) {
	m := loadTiny(t)
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 256})
	grammar := `root ::= ("yes" | "no") " " [0-9] [0-9]`
	s, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: grammar})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	toks, _ := m.Tokenize("Answer:", true, false)
	b, _ := llama.NewBatch(64, 1)
	defer b.Close()
	for i, tk := range toks {
		b.Add(tk, llama.Pos(i), 0, i == len(toks)-1)
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	idx, pos := len(toks)-1, len(toks)
	var out []llama.Token
	for i := 0; i < 16; i++ {
		tk, err := s.Sample(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		if m.IsEOG(tk) {
			break
		}
		out = append(out, tk)
		b.Clear()
		b.Add(tk, llama.Pos(pos), 0, true)
		pos++
		idx = 0
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
	}
	text, _ := m.Detokenize(out, false, false)
	if !(strings.HasPrefix(text, "yes ") || strings.HasPrefix(text, "no ")) || len(text) != len(strings.Fields(text)[0])+3 {
		t.Fatalf("grammar output %q", text)
	}
	if _, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: `root ::= ("unclosed`}); !errors.Is(err, llama.ErrGrammar) {
		t.Errorf("bad grammar: %v", err)
	}
}

func TestLoRAAdapter(t *testing.T) {
	m := loadTiny(t)
	dir := t.TempDir()
	cfg := tiny.DefaultConfig()
	zero := filepath.Join(dir, "zero.gguf")
	live := filepath.Join(dir, "live.gguf")
	targets := []string{"attn_q", "attn_v", "ffn_up", "ffn_down"}
	if err := tiny.WriteLoRA(zero, cfg, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: targets, Zero: true}); err != nil {
		t.Fatal(err)
	}
	if err := tiny.WriteLoRA(live, cfg, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: targets, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 256})
	toks, _ := m.Tokenize("LoRA check", true, false)
	base := logitsAfter(t, m, ctx, 0, 0, toks)

	for _, tc := range []struct {
		path    string
		changes bool
	}{{zero, false}, {live, true}} {
		a, err := m.LoadAdapter(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := a.Meta("adapter.type"); !ok || v != "lora" {
			t.Errorf("adapter meta %q %v", v, ok)
		}
		if err := ctx.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); !errors.Is(err, llama.ErrInUse) {
			t.Errorf("closing an attached adapter: %v", err)
		}
		ctx.ClearKV()
		got := logitsAfter(t, m, ctx, 0, 0, toks)
		d := maxDiff(got, base)
		if tc.changes && d < 1e-3 {
			t.Errorf("%s: logits unchanged (max diff %g)", tc.path, d)
		}
		if !tc.changes && d > 1e-5 {
			t.Errorf("%s: zero adapter changed logits by %g", tc.path, d)
		}
		if err := ctx.RemoveAdapter(a); err != nil {
			t.Fatal(err)
		}
		ctx.ClearKV()
		if d := maxDiff(logitsAfter(t, m, ctx, 0, 0, toks), base); d > 1e-5 {
			t.Errorf("after removing the adapter logits differ by %g", d)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Adapters that do not fit: another architecture, another shape.
	wrongArch := filepath.Join(dir, "arch.gguf")
	tiny.WriteLoRA(wrongArch, cfg, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: targets, Architecture: "gemma"})
	bigger := cfg
	bigger.Embedding *= 2
	wrongShape := filepath.Join(dir, "shape.gguf")
	tiny.WriteLoRA(wrongShape, bigger, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: targets})
	for _, p := range []string{wrongArch, wrongShape, filepath.Join(dir, "missing.gguf"), tinyPath} {
		if _, err := m.LoadAdapter(p); !errors.Is(err, llama.ErrAdapter) {
			t.Errorf("%s: want ErrAdapter, got %v", filepath.Base(p), err)
		}
	}
}

func TestBadModelFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		"missing":         filepath.Join(dir, "nope.gguf"),
		"directory":       dir,
		"empty":           write("empty.gguf", nil),
		"not gguf":        write("text.gguf", []byte("this is not a model, just text\n")),
		"header only":     write("head.gguf", good[:24]),
		"truncated kv":    write("kv.gguf", good[:400]),
		"truncated data":  write("data.gguf", good[:len(good)-1000]),
		"garbage after 4": write("garbage.gguf", append([]byte("GGUF"), make([]byte, 64)...)),
	}
	for name, p := range cases {
		m, err := llama.LoadModel(p, llama.ModelOptions{})
		if err == nil {
			m.Close()
			t.Errorf("%s: loaded without error", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	// A well-formed GGUF of an architecture llama.cpp does not know.
	w := gguf.NewWriter()
	w.SetString("general.architecture", "no-such-arch")
	w.SetUint32("no-such-arch.context_length", 128)
	w.AddF32("token_embd.weight", []uint64{4, 4}, make([]float32, 16))
	alien := filepath.Join(dir, "alien.gguf")
	if err := w.WriteFile(alien); err != nil {
		t.Fatal(err)
	}
	if _, err := llama.LoadModel(alien, llama.ModelOptions{}); !errors.Is(err, llama.ErrModelLoad) || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("unknown architecture: %v", err)
	}
	if _, err := llama.LoadModel(cases["not gguf"], llama.ModelOptions{}); !errors.Is(err, llama.ErrNotGGUF) {
		t.Errorf("not gguf: %v", err)
	}
	if _, err := llama.LoadModel(cases["missing"], llama.ModelOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestContextOverflowAndBadBatches(t *testing.T) {
	m := loadTiny(t)
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 256, Sequences: 2, UnifiedKV: true})
	b, _ := llama.NewBatch(256, 1)
	defer b.Close()
	// Fill the cache, then one more token overflows.
	for i := 0; i < 256; i++ {
		b.Add(llama.Token(65+i%26), llama.Pos(i), 0, false)
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	b.Clear()
	b.Add(65, 0, 1, true)
	if err := ctx.Decode(b); !errors.Is(err, llama.ErrContextFull) {
		t.Errorf("overflow: %v", err)
	}
	ctx.ClearKV()
	b.Clear()
	b.Add(99999, 0, 0, true)
	if err := ctx.Decode(b); !errors.Is(err, llama.ErrInvalidBatch) {
		t.Errorf("bad token: %v", err)
	}
	b.Clear()
	b.Add(65, 0, 5, true)
	if err := ctx.Decode(b); !errors.Is(err, llama.ErrInvalidBatch) {
		t.Errorf("bad sequence: %v", err)
	}
	b.Clear()
	if err := ctx.Decode(b); !errors.Is(err, llama.ErrInvalidBatch) {
		t.Errorf("empty batch: %v", err)
	}
	b.Add(65, 0, 0, false)
	ctx.Decode(b)
	if _, err := ctx.Logits(0, nil); err == nil {
		t.Error("logits of a token without logits")
	}
	if _, err := ctx.Logits(7, nil); err == nil {
		t.Error("logits out of range")
	}
}

func TestCloseOrder(t *testing.T) {
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); !errors.Is(err, llama.ErrInUse) {
		t.Errorf("closing a model with an open context: %v", err)
	}
	ctx.Close()
	// The sequence-state calls of a closed context are errors, not reads
	// of freed memory.
	if _, err := ctx.KVCells(0); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("KVCells after Close: %v, want ErrClosed", err)
	}
	if _, err := ctx.SaveSeq(0); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("SaveSeq after Close: %v, want ErrClosed", err)
	}
	if err := ctx.LoadSeq([]byte{1}, 0); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("LoadSeq after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tokenize("x", false, false); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("use after close: %v", err)
	}
	if _, err := m.NewContext(llama.ContextOptions{}); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("context after close: %v", err)
	}
}

func TestVocabOnlyAndProgress(t *testing.T) {
	var calls int
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{Progress: func(f float32) bool { calls++; return true }})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if calls == 0 {
		t.Error("progress callback never called")
	}
	_, err = llama.LoadModel(tinyPath, llama.ModelOptions{Progress: func(float32) bool { return false }})
	if err == nil {
		t.Error("cancelled load succeeded")
	}
	v, err := llama.LoadModel(tinyPath, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if toks, _ := v.Tokenize("abc", false, false); len(toks) != 3 {
		t.Errorf("vocab-only tokenize %v", toks)
	}
}

func TestGrammarRepetitionChecks(t *testing.T) {
	m := loadTiny(t)
	for _, g := range []string{
		"root ::= item{6,3}\nitem ::= \"a\"",
		"root ::= \"a\"{5000}",
		"root ::= \"a\"{1,99999}",
	} {
		if _, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: g}); !errors.Is(err, llama.ErrGrammar) {
			t.Errorf("%q: want ErrGrammar, got %v", g, err)
		}
	}
	// Braces inside literals, classes and comments are not repetitions.
	for _, g := range []string{
		"root ::= \"{6,3}\" [{}] # {9,1}\n",
		"root ::= \"a\"{2,3}",
		"root ::= \"a\"{2,}",
	} {
		s, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: g})
		if err != nil {
			t.Errorf("%q: %v", g, err)
			continue
		}
		s.Close()
	}
}
