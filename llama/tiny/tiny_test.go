package tiny

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

func writeModel(t *testing.T, cfg Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := Write(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestModelMetadata(t *testing.T) {
	cfg := DefaultConfig()
	f := openGGUF(t, writeModel(t, cfg))

	// llama.cpp rejects hyper-parameters of the wrong type, so check types,
	// not just values.
	want := []struct {
		key   string
		typ   gguf.ValueType
		value any
	}{
		{"general.architecture", gguf.TypeString, "llama"},
		{"general.name", gguf.TypeString, "codeplan-tiny"},
		{"general.file_type", gguf.TypeUint32, uint32(0)},
		{"llama.context_length", gguf.TypeUint32, uint32(4096)},
		{"llama.embedding_length", gguf.TypeUint32, uint32(64)},
		{"llama.block_count", gguf.TypeUint32, uint32(2)},
		{"llama.feed_forward_length", gguf.TypeUint32, uint32(128)},
		{"llama.attention.head_count", gguf.TypeUint32, uint32(4)},
		{"llama.attention.head_count_kv", gguf.TypeUint32, uint32(4)},
		{"llama.rope.dimension_count", gguf.TypeUint32, uint32(16)},
		{"llama.rope.freq_base", gguf.TypeFloat32, float32(10000)},
		{"llama.attention.layer_norm_rms_epsilon", gguf.TypeFloat32, float32(1e-5)},
		{"tokenizer.ggml.model", gguf.TypeString, "gpt2"},
		{"tokenizer.ggml.pre", gguf.TypeString, "qwen2"},
		{"tokenizer.ggml.bos_token_id", gguf.TypeUint32, uint32(TokenEndOfText)},
		{"tokenizer.ggml.eos_token_id", gguf.TypeUint32, uint32(TokenIMEnd)},
		{"tokenizer.ggml.padding_token_id", gguf.TypeUint32, uint32(TokenEndOfText)},
		{"tokenizer.ggml.add_bos_token", gguf.TypeBool, false},
		{"tokenizer.chat_template", gguf.TypeString, ChatTemplate},
	}
	for _, w := range want {
		kv, ok := f.Lookup(w.key)
		if !ok {
			t.Errorf("missing key %s", w.key)
			continue
		}
		if kv.Type != w.typ || kv.Value != w.value {
			t.Errorf("%s = %s %#v, want %s %#v", w.key, kv.Type, kv.Value, w.typ, w.value)
		}
	}

	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != VocabSize {
		t.Fatalf("tokens: %d (ok=%v)", len(toks), ok)
	}
	if toks[TokenIMStart] != "<|im_start|>" || toks[TokenIMEnd] != "<|im_end|>" || toks[TokenEndOfText] != "<|endoftext|>" {
		t.Errorf("special tokens %q", toks[NumByteTokens:])
	}
	types, ok := f.Int32s("tokenizer.ggml.token_type")
	if !ok || len(types) != VocabSize || types[0] != 1 || types[TokenIMEnd] != 3 {
		t.Errorf("token types %v (ok=%v)", types, ok)
	}
	merges, ok := f.Strings("tokenizer.ggml.merges")
	if !ok || len(merges) != 0 {
		t.Errorf("merges %v (ok=%v), want an empty string array", merges, ok)
	}
	if !strings.Contains(ChatTemplate, "<|im_start|>") {
		t.Error("chat template lacks <|im_start|>, llama.cpp would not detect ChatML")
	}
}

func TestModelTensors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KVHeads = 2 // exercise grouped-query shapes
	path := writeModel(t, cfg)
	f := openGGUF(t, path)

	names := TensorNames(cfg)
	if len(names) != 3+9*cfg.Layers {
		t.Fatalf("%d tensor names", len(names))
	}
	got := f.Tensors()
	if len(got) != len(names) {
		t.Fatalf("file has %d tensors, want %d", len(got), len(names))
	}
	// Expected shapes written out by hand from llama.cpp's LLM_ARCH_LLAMA
	// tensor list, rather than recomputed by TensorShape.
	e, v, ff, kv := uint64(64), uint64(VocabSize), uint64(128), uint64(32)
	wantShapes := map[string][]uint64{
		"token_embd.weight":        {e, v},
		"output_norm.weight":       {e},
		"output.weight":            {e, v},
		"blk.1.attn_norm.weight":   {e},
		"blk.1.attn_q.weight":      {e, e},
		"blk.1.attn_k.weight":      {e, kv},
		"blk.1.attn_v.weight":      {e, kv},
		"blk.1.attn_output.weight": {e, e},
		"blk.1.ffn_norm.weight":    {e},
		"blk.1.ffn_gate.weight":    {e, ff},
		"blk.1.ffn_up.weight":      {e, ff},
		"blk.1.ffn_down.weight":    {ff, e},
		"blk.0.ffn_down.weight":    {ff, e},
		"blk.0.attn_output.weight": {e, e},
		"blk.0.attn_k.weight":      {e, kv},
		"blk.0.ffn_norm.weight":    {e},
		"blk.0.attn_norm.weight":   {e},
		"blk.0.ffn_gate.weight":    {e, ff},
		"blk.0.ffn_up.weight":      {e, ff},
		"blk.0.attn_q.weight":      {e, e},
		"blk.0.attn_v.weight":      {e, kv},
	}
	for i, ti := range got {
		if ti.Name != names[i] {
			t.Errorf("tensor %d is %q, want %q", i, ti.Name, names[i])
		}
		if ti.Type != gguf.TensorF32 {
			t.Errorf("%s has type %s", ti.Name, ti.Type)
		}
		if want := wantShapes[ti.Name]; !reflect.DeepEqual(ti.Shape, want) {
			t.Errorf("%s shape %v, want %v", ti.Name, ti.Shape, want)
		}
		shape, err := TensorShape(cfg, ti.Name)
		if err != nil || !reflect.DeepEqual(shape, ti.Shape) {
			t.Errorf("TensorShape(%s) = %v, %v; file has %v", ti.Name, shape, err, ti.Shape)
		}
	}

	norm, err := f.TensorF32("blk.0.ffn_norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range norm {
		if x != 1 {
			t.Fatalf("norm weight %v, want 1", x)
		}
	}
	q, err := f.TensorF32("blk.0.attn_q.weight")
	if err != nil {
		t.Fatal(err)
	}
	if std := stddev(q); std < 0.2 || std > 0.3 {
		t.Errorf("attn_q std %.3f, want about %.3f", std, blockGain/8)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 2<<20 {
		t.Errorf("model is %d bytes, want a few hundred KB", st.Size())
	}
}

func stddev(x []float32) float64 {
	var s, ss float64
	for _, v := range x {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	n := float64(len(x))
	return math.Sqrt(ss/n - (s/n)*(s/n))
}

func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	a, err := os.ReadFile(writeModel(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeModel(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same config gave different files")
	}

	other := cfg
	other.Seed++
	fa := openGGUF(t, writeModel(t, cfg))
	fb := openGGUF(t, writeModel(t, other))
	for _, name := range []string{"token_embd.weight", "blk.1.ffn_up.weight"} {
		wa, _ := fa.TensorF32(name)
		wb, _ := fb.TensorF32(name)
		if reflect.DeepEqual(wa, wb) {
			t.Errorf("%s is the same for different seeds", name)
		}
	}
}

func TestPathCaches(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // os.UserCacheDir on Linux
	t.Setenv("HOME", cache)           // and on macOS

	path, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, cache) || !strings.Contains(path, "codeplan") {
		t.Errorf("path %s is not under %s/codeplan", path, cache)
	}
	// Backdate the file: a rewrite would give it a fresh mtime.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	again, err := Path(DefaultConfig())
	if err != nil || again != path {
		t.Fatalf("second Path = %s, %v; want %s", again, err, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(old) {
		t.Errorf("cached file was rewritten (mtime %v, want %v)", st.ModTime(), old)
	}

	other := DefaultConfig()
	other.Layers = 1
	otherPath, err := Path(other)
	if err != nil {
		t.Fatal(err)
	}
	if otherPath == path {
		t.Error("different configs share a cache file")
	}
	if !strings.Contains(filepath.Base(path), fmt.Sprintf("v%d", FormatVersion)) {
		t.Errorf("file name %s lacks the format version", filepath.Base(path))
	}
}

func TestPathConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range paths {
		wg.Go(func() { paths[i], errs[i] = pathIn(dir, DefaultConfig()) })
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("caller %d: %s, %v", i, paths[i], errs[i])
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("cache holds %d entries, want 1 (temporary files left behind?)", len(entries))
	}
	openGGUF(t, paths[0])
}

func TestVocab(t *testing.T) {
	toks := Tokens()
	if len(toks) != VocabSize || VocabSize != 259 {
		t.Fatalf("%d tokens", len(toks))
	}
	seen := map[string]int{}
	for i, tok := range toks {
		if j, dup := seen[tok]; dup {
			t.Errorf("tokens %d and %d are both %q", j, i, tok)
		}
		seen[tok] = i
	}
	runes := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := ByteToRune(byte(b))
		if runes[r] {
			t.Fatalf("rune %U used twice", r)
		}
		runes[r] = true
		if toks[b] != string(r) || utf8.RuneCountInString(toks[b]) != 1 {
			t.Errorf("token %d is %q, want %q", b, toks[b], r)
		}
		back, ok := RuneToByte(r)
		if !ok || back != byte(b) {
			t.Errorf("RuneToByte(%U) = %d, %v; want %d", r, back, ok, b)
		}
	}
	// Well-known points of GPT-2's table.
	for b, want := range map[byte]rune{'A': 'A', '~': '~', ' ': 'Ġ', '\n': 'Ċ', 0: 'Ā', 0x7f: 'ġ', 0xad: 'Ń', 0xff: 'ÿ'} {
		if got := ByteToRune(b); got != want {
			t.Errorf("ByteToRune(%#x) = %q, want %q", b, got, want)
		}
	}
	for _, r := range []rune{' ', '\n', 0x144, 'Ж'} {
		if _, ok := RuneToByte(r); ok {
			t.Errorf("RuneToByte(%U) accepted", r)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	bad := map[string]Config{
		"zero embedding":       mod(func(c *Config) { c.Embedding = 0 }),
		"negative layers":      mod(func(c *Config) { c.Layers = -1 }),
		"heads not dividing":   mod(func(c *Config) { c.Heads = 3 }),
		"kv heads not divide":  mod(func(c *Config) { c.KVHeads = 3 }),
		"odd head dim":         mod(func(c *Config) { c.Embedding = 60; c.Heads = 4; c.KVHeads = 4 }),
		"zero context":         mod(func(c *Config) { c.ContextLength = 0 }),
		"zero feed forward":    mod(func(c *Config) { c.FeedForward = 0 }),
		"far too many weights": mod(func(c *Config) { c.Embedding = 8192; c.FeedForward = 8192; c.Layers = 64 }),
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := Write(filepath.Join(t.TempDir(), "m.gguf"), c); err == nil {
			t.Errorf("%s: Write accepted", name)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}

func TestTensorShapeErrors(t *testing.T) {
	cfg := DefaultConfig()
	for _, name := range []string{"", "blk.2.attn_q.weight", "blk.0.attn_q.bias", "blk.x.attn_q.weight",
		"blk.01.attn_q.weight", "blk.0.rope_freqs.weight", "blk.-1.attn_q.weight", "output"} {
		if shape, err := TensorShape(cfg, name); err == nil {
			t.Errorf("TensorShape(%q) = %v, want an error", name, shape)
		}
	}
}

func TestLoRA(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KVHeads = 2
	dir := t.TempDir()
	path := filepath.Join(dir, "lora.gguf")
	opts := LoRAOptions{Rank: 3, Alpha: 6, Targets: []string{"attn_q", "attn_v", "ffn_down"}, Seed: 7}
	if err := WriteLoRA(path, cfg, opts); err != nil {
		t.Fatal(err)
	}
	f := openGGUF(t, path)
	for key, want := range map[string]string{"general.type": "adapter", "general.architecture": "llama", "adapter.type": "lora"} {
		if got, ok := f.String(key); !ok || got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if kv, ok := f.Lookup("adapter.lora.alpha"); !ok || kv.Type != gguf.TypeFloat32 || kv.Value != float32(6) {
		t.Errorf("alpha %+v", kv)
	}
	if n := len(f.Tensors()); n != 2*3*cfg.Layers {
		t.Errorf("%d tensors, want %d", n, 2*3*cfg.Layers)
	}
	for l := 0; l < cfg.Layers; l++ {
		for _, target := range opts.Targets {
			base := fmt.Sprintf("blk.%d.%s.weight", l, target)
			model, _ := TensorShape(cfg, base)
			a, okA := f.Tensor(base + ".lora_a")
			b, okB := f.Tensor(base + ".lora_b")
			if !okA || !okB {
				t.Fatalf("%s: missing A or B", base)
			}
			// The checks llama_adapter_lora_init applies.
			if model[0] != a.Shape[0] || model[1] != b.Shape[1] || a.Shape[1] != b.Shape[0] || a.Shape[1] != 3 {
				t.Errorf("%s: model %v, A %v, B %v", base, model, a.Shape, b.Shape)
			}
			bv, _ := f.TensorF32(b.Name)
			if allZero(bv) {
				t.Errorf("%s: B is zero without Zero", base)
			}
		}
	}

	zeroPath := filepath.Join(dir, "zero.gguf")
	opts.Zero = true
	if err := WriteLoRA(zeroPath, cfg, opts); err != nil {
		t.Fatal(err)
	}
	fz := openGGUF(t, zeroPath)
	for _, ti := range fz.Tensors() {
		v, _ := fz.TensorF32(ti.Name)
		if strings.HasSuffix(ti.Name, ".lora_b") != allZero(v) {
			t.Errorf("%s: all zero = %v", ti.Name, allZero(v))
		}
	}

	archPath := filepath.Join(dir, "arch.gguf")
	if err := WriteLoRA(archPath, cfg, LoRAOptions{Rank: 2, Architecture: "qwen2"}); err != nil {
		t.Fatal(err)
	}
	fa := openGGUF(t, archPath)
	if arch, _ := fa.String("general.architecture"); arch != "qwen2" {
		t.Errorf("architecture %q", arch)
	}
	if _, ok := fa.Tensor("blk.0.attn_v.weight.lora_a"); !ok {
		t.Error("default targets should include attn_v")
	}

	for name, o := range map[string]LoRAOptions{
		"zero rank":      {Rank: 0},
		"unknown target": {Rank: 2, Targets: []string{"attn_qkv"}},
		"norm target":    {Rank: 2, Targets: []string{"attn_norm"}},
		"duplicate":      {Rank: 2, Targets: []string{"attn_q", "attn_q"}},
	} {
		if err := WriteLoRA(filepath.Join(dir, "bad.gguf"), cfg, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func allZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// The random model must behave like a usable test model: greedy decoding
// yields printable text, does not stop early and does not lock into a short
// loop.
func TestGreedyDecodingIsNotDegenerate(t *testing.T) {
	cfg := DefaultConfig()
	path := writeModel(t, cfg)
	for _, prompt := range []string{"Hello", "What is 2+2?", "Write a plan for sorting a list."} {
		out := loadRef(t, path, cfg).greedy(chatPrompt(prompt), 96)
		distinct := map[int]bool{}
		for _, tok := range out {
			distinct[tok] = true
			if tok != '\n' && (tok < ' ' || tok > '~') {
				t.Errorf("%q: generated token %d, want printable ASCII", prompt, tok)
			}
		}
		if len(distinct) < 20 {
			t.Errorf("%q: only %d distinct tokens in %v", prompt, len(distinct), out)
		}
		if p := shortestPeriod(out[len(out)-32:]); p <= 4 {
			t.Errorf("%q: output ends in a loop of period %d: %v", prompt, p, out)
		}
	}
}

// shortestPeriod returns the smallest p for which s repeats with period p,
// or len(s).
func shortestPeriod(s []int) int {
	for p := 1; p < len(s); p++ {
		periodic := true
		for i := p; i < len(s) && periodic; i++ {
			periodic = s[i] == s[i-p]
		}
		if periodic {
			return p
		}
	}
	return len(s)
}

func TestLoRAEffectOnReferenceModel(t *testing.T) {
	cfg := DefaultConfig()
	path := writeModel(t, cfg)
	dir := t.TempDir()
	prompt := chatPrompt("Hello")
	base := loadRef(t, path, cfg).greedy(prompt, 32)

	for _, zero := range []bool{true, false} {
		lora := filepath.Join(dir, fmt.Sprintf("lora-%v.gguf", zero))
		opts := LoRAOptions{Rank: 4, Alpha: 8, Targets: []string{"attn_q", "attn_v", "ffn_up"}, Zero: zero, Seed: 1}
		if err := WriteLoRA(lora, cfg, opts); err != nil {
			t.Fatal(err)
		}
		m := loadRef(t, path, cfg)
		m.applyLoRA(t, lora, opts.Rank)
		out := m.greedy(prompt, 32)
		if same := reflect.DeepEqual(out, base); same != zero {
			t.Errorf("Zero=%v: output unchanged = %v", zero, same)
		}
	}
}

func TestWriteAsWeightTypes(t *testing.T) {
	cfg := DefaultConfig()
	for typ, ftype := range map[gguf.TensorType]uint32{gguf.TensorF16: 1, gguf.TensorQ8_0: 7, gguf.TensorQ4_0: 2} {
		p := filepath.Join(t.TempDir(), "m.gguf")
		if err := WriteAs(p, cfg, typ); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := f.Uint32("general.file_type"); v != ftype {
			t.Errorf("%s: file_type %d, want %d", typ, v, ftype)
		}
		q, _ := f.Tensor("blk.0.attn_q.weight")
		n, _ := f.Tensor("blk.0.attn_norm.weight")
		if q.Type != typ || n.Type != gguf.TensorF32 {
			t.Errorf("%s: matrix stored as %s, norm as %s", typ, q.Type, n.Type)
		}
		f.Close()
	}
	if err := WriteAs(filepath.Join(t.TempDir(), "x.gguf"), cfg, gguf.TensorQ4_K); err == nil {
		t.Error("Q4_K accepted")
	}
}
