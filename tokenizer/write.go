package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeplan-dev/codeplan/dataset"
)

// ChatTemplate is the ChatML template written to tokenizer_config.json, the
// same as that of 'codeplan model init”s byte-level vocabulary.
const ChatTemplate = "{% for message in messages %}" +
	"{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
	"{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// JSON returns the tokenizer.json text: Llama-3's pre-tokenizer (Split by
// Pattern, then ByteLevel without its own regex), a BPE model with
// ignore_merges, the ByteLevel decoder, and the special tokens as added
// tokens.
func (t *Tokenizer) JSON() ([]byte, error) {
	vocab := make(map[string]int, len(t.Tokens))
	var added []addedToken
	for id, tok := range t.Tokens {
		if isSpecial(tok) {
			added = append(added, addedToken{ID: id, Content: tok, Special: true})
		}
		vocab[tok] = id
	}
	merges := make([]string, len(t.Merges))
	for i, m := range t.Merges {
		merges[i] = m[0] + " " + m[1]
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": Pattern}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil,
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": true, "vocab": vocab, "merges": merges,
		},
	}
	return json.MarshalIndent(doc, "", " ")
}

// WriteDir writes tokenizer.json and tokenizer_config.json (BOS and padding
// <|endoftext|>, EOS <|im_end|>, no automatic BOS/EOS, the ChatML template)
// into dir, creating it.
func (t *Tokenizer) WriteDir(dir string) error {
	tj, err := t.JSON()
	if err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(map[string]any{
		"bos_token": Specials[0], "eos_token": Specials[2], "pad_token": Specials[0],
		"add_bos_token": false, "add_eos_token": false, "chat_template": ChatTemplate,
		"model_max_length": 1 << 20, "tokenizer_class": "PreTrainedTokenizerFast",
	}, "", " ")
	if err != nil {
		return err
	}
	// Each file goes through dataset's one writer of whole files: a device,
	// FIFO or folder in its place is refused, another run writing it holds
	// its lock, and a reader never sees half a file.
	for _, f := range []struct {
		name string
		data []byte
	}{{"tokenizer.json", tj}, {"tokenizer_config.json", cfg}} {
		if err := dataset.WriteFile(filepath.Join(dir, f.name), append(f.data, '\n')); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	return nil
}

// Load reads a tokenizer.json written by WriteDir from dir. It rebuilds the
// vocabulary from the merges and refuses a file whose token ids differ (one
// this package did not write).
func Load(dir string) (*Tokenizer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var doc struct {
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(dir, "tokenizer.json"), err)
	}
	merges := make([][2]string, len(doc.Model.Merges))
	for i, m := range doc.Model.Merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d %q is not two tokens", i, m)
		}
		merges[i] = [2]string{a, b}
	}
	t := build(merges)
	if len(t.Tokens) != len(doc.Model.Vocab) {
		return nil, fmt.Errorf("tokenizer: %s has %d tokens, its merges make %d: not written by 'codeplan tokenizer train'", dir, len(doc.Model.Vocab), len(t.Tokens))
	}
	for tok, id := range doc.Model.Vocab {
		if got, ok := t.ids[tok]; !ok || got != id {
			return nil, fmt.Errorf("tokenizer: %s: token %q has id %d, its merges give %d: not written by 'codeplan tokenizer train'", dir, tok, id, got)
		}
	}
	return t, nil
}
