package hf

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/randmodel"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// tokText mixes scripts, digits, code, whitespace runs and chat markers:
// where pre-tokenizers and added-token handling differ.
const tokText = "Hello  world! 12345 + 6.789 = ?? naïve café, Straße; 日本語、中文。 Привет 🙂\n" +
	"\tdef f(x):\n        return x**2   # square\n\n\n   \n" +
	"I'm sure it's 3,000,000 -- don't.   The END\n"

// jsEncode tokenizes text with the exported tokenizer.json through the
// JavaScript port of transformers' tokenizers.
func jsEncode(t *testing.T, dir, text string, special bool) []llama.Token {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	mods := filepath.Join(testmodel.TokenizerCache(), "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "@lenml", "tokenizers")); err != nil {
		t.Skipf("@lenml/tokenizers not in %s: run scripts/fetch-tokenizers.sh", mods)
	}
	arg := "plain"
	if special {
		arg = "special"
	}
	cmd := exec.Command(node, filepath.Join("testdata", "encode_json.js"), dir, arg)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
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

// checkTokenizer exports model and compares the tokenizer.json's ids with
// llama.cpp's for text, with special tokens (BOS) and without.
func checkTokenizer(t *testing.T, model, text string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hf")
	m := testmodel.LoadFile(t, model)
	addBOS, err := m.AddBOS()
	if err != nil {
		t.Fatal(err)
	}
	res, err := ExportModel(model, dir, ModelOptions{AddBOS: &addBOS})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tokenizer != "tokenizer.json written" {
		t.Fatalf("export-hf: %s", res.Tokenizer)
	}
	for _, special := range []bool{false, true} {
		want, err := m.Tokenize(text, special, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsEncode(t, dir, text, special); !slices.Equal(got, want) {
			t.Errorf("special tokens %v: tokenizer.json gives\n%v\nllama.cpp\n%v", special, got, want)
		}
	}
}

// TestTokenizerJSONByteLevel: the byte vocabulary of tiny and model init
// (qwen2 pre-tokenizer, ChatML control tokens).
func TestTokenizerJSONByteLevel(t *testing.T) {
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	checkTokenizer(t, p, "<|im_start|>user\n"+tokText+"<|im_end|>\n<|im_start|>assistant\n")
}

// TestTokenizerJSONLlama3: Llama-3's vocabulary, merges, pre-tokenizer
// (llama-bpe), special tokens and BOS, as a model written with the real
// tokenizer carries them.
func TestTokenizerJSONLlama3(t *testing.T) {
	v, err := hfvocab.Load(testmodel.Tokenizer(t, "llama3"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := randmodel.Lookup("toy")
	model := filepath.Join(t.TempDir(), "llama3.gguf")
	if err := randmodel.Write(model, s, randmodel.Options{Type: gguf.TensorF16, Vocab: v, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	checkTokenizer(t, model, "<|start_header_id|>user<|end_header_id|>\n\n"+tokText+"<|eot_id|>")
}
