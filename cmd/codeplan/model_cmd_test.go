package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

func TestModelTinyAndInfo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "tiny.gguf")
	if code := run([]string{"codeplan", "-q", "model", "tiny", "--out", out, "--print-path"}); code != 0 {
		t.Fatalf("model tiny --out: exit %d", code)
	}
	m, err := llama.LoadModel(out, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatalf("the written model does not load: %v", err)
	}
	m.Close()
	if code := run([]string{"codeplan", "-q", "info", out, "--all", "--system"}); code != 0 {
		t.Errorf("info: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "info", "--json", "--model", out}); code != 0 {
		t.Errorf("info --json: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "model", "tiny", "--size", "huge"}); code != exitUsage {
		t.Errorf("bad size: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGUF but not really"), 0o644)
	if code := run([]string{"codeplan", "-q", "info", bad}); code != exitUsage {
		t.Errorf("corrupt model: exit %d, want %d", code, exitUsage)
	}
}

func TestBenchCommand(t *testing.T) {
	if code := run([]string{"codeplan", "-q", "bench", "tiny", "--parallels", "1,2", "--pp", "32", "--tg", "8", "--threads", "1", "--json"}); code != 0 {
		t.Errorf("bench: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "bench", "tiny", "--parallels", "0"}); code != exitUsage {
		t.Errorf("bad --parallels: exit %d", code)
	}
}

// TestModelInit: `model init` writes the requested shape with the documented
// initialisation, deterministically; the model loads, its ChatML markers are
// single special tokens, and llama.cpp applies its chat template.
func TestModelInit(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "init.gguf")
	args := []string{"codeplan", "-q", "model", "init", "--out", out, "--layers", "3", "--embd", "96", "--heads", "6", "--kv-heads", "2", "--ff", "160", "--ctx", "512", "--seed", "9"}
	if code := run(args); code != 0 {
		t.Fatalf("model init: exit %d", code)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if code := run(args); code != exitUsage {
		t.Errorf("model init over an existing file: exit %d, want %d", code, exitUsage)
	}
	if code := run(append(args, "--force")); code != 0 {
		t.Fatalf("model init --force: exit %d", code)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(first, again) {
		t.Error("the same flags wrote different bytes")
	}

	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for key, want := range map[string]uint32{"llama.block_count": 3, "llama.embedding_length": 96, "llama.attention.head_count": 6,
		"llama.attention.head_count_kv": 2, "llama.feed_forward_length": 160, "llama.context_length": 512} {
		if got, ok := f.Uint32(key); !ok || got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	stats := func(name string) (mean, std float64) {
		v, err := f.TensorF32(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			mean += float64(x)
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v)))
	}
	for name, want := range map[string]float64{"token_embd.weight": 0.02, "output.weight": 0.02, "blk.0.attn_q.weight": 0.02,
		"blk.2.ffn_up.weight": 0.02, "blk.1.attn_output.weight": 0.02 / math.Sqrt(6), "blk.2.ffn_down.weight": 0.02 / math.Sqrt(6)} {
		if mean, std := stats(name); math.Abs(std-want) > 0.05*want || math.Abs(mean) > 0.1*want {
			t.Errorf("%s: mean %.5f std %.5f, want std %.5f", name, mean, std, want)
		}
	}
	if mean, std := stats("blk.1.ffn_norm.weight"); mean != 1 || std != 0 {
		t.Errorf("norm weights: mean %g std %g, want all 1", mean, std)
	}
	if ti, _ := f.Tensor("blk.0.attn_k.weight"); len(ti.Shape) != 2 || ti.Shape[0] != 96 || ti.Shape[1] != 32 {
		t.Errorf("attn_k shape %v, want [96 32] (2 kv heads of 16)", ti.Shape)
	}

	m, err := llama.LoadModel(out, llama.ModelOptions{})
	if err != nil {
		t.Fatalf("the initialised model does not load: %v", err)
	}
	defer m.Close()
	if m.Layers() != 3 || m.VocabSize() != 259 {
		t.Errorf("loaded %d layers, %d tokens", m.Layers(), m.VocabSize())
	}
	toks, err := m.Tokenize("<|im_start|>user\nhi<|im_end|>", false, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2+len("user\nhi") || toks[0] != 257 || toks[len(toks)-1] != 258 || !m.IsEOG(toks[len(toks)-1]) {
		t.Errorf("ChatML markers are not single special tokens (the end one a stop token): %v", toks)
	}
	chat, err := m.ApplyTemplate([]llama.ChatMessage{{Role: "user", Content: "hi"}}, true)
	if err != nil || chat != "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("chat template: %q, %v", chat, err)
	}

	tied := filepath.Join(dir, "tied.gguf")
	if code := run([]string{"codeplan", "-q", "model", "init", "--out", tied, "--layers", "1", "--embd", "32", "--heads", "2", "--ff", "64", "--tied"}); code != 0 {
		t.Fatalf("model init --tied: exit %d", code)
	}
	if tf, err := gguf.Open(tied); err != nil {
		t.Fatal(err)
	} else {
		if _, ok := tf.Tensor("output.weight"); ok {
			t.Error("--tied wrote output.weight")
		}
		tf.Close()
	}
	if tm, err := llama.LoadModel(tied, llama.ModelOptions{}); err != nil {
		t.Errorf("tied model does not load: %v", err)
	} else {
		tm.Close()
	}

	for _, bad := range [][]string{
		{"--out", filepath.Join(dir, "a.gguf"), "--layers", "2", "--embd", "100", "--heads", "6", "--ff", "64"},                   // E not a multiple of H
		{"--out", filepath.Join(dir, "b.gguf"), "--embd", "64", "--heads", "4", "--ff", "64"},                                     // no --layers
		{"--out", filepath.Join(dir, "c.gguf"), "--layers", "2", "--embd", "64", "--heads", "4", "--kv-heads", "3", "--ff", "64"}, // H not a multiple of G
		{"--layers", "2", "--embd", "64", "--heads", "4", "--ff", "64"},                                                           // no --out
	} {
		if code := run(append([]string{"codeplan", "-q", "model", "init"}, bad...)); code != exitUsage {
			t.Errorf("model init %v: exit %d, want %d", bad, code, exitUsage)
		}
	}
}
