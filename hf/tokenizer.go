package hf

import (
	"encoding/json"
	"fmt"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Pre-tokenizer regular expressions of the byte-level BPE vocabularies
// llama.cpp names in tokenizer.ggml.pre, as the models' tokenizer.json files
// spell them.
var preTokenizers = map[string]string{
	// Llama-3 ("llama-bpe").
	"llama-bpe": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	// Qwen2 (digits one at a time).
	"qwen2": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

// llama.cpp's token types.
const (
	tokControl     = 3
	tokUserDefined = 4
)

// tokenizerJSON builds tokenizer.json and tokenizer_config.json for a "gpt2"
// (byte-level BPE) vocabulary whose pre-tokenizer is known; otherwise it
// returns why not.
func tokenizerJSON(f *gguf.File, addBOSOpt *bool) (tok, cfg []byte, why string) {
	model, _ := f.String("tokenizer.ggml.model")
	if model != "gpt2" {
		return nil, nil, fmt.Sprintf("the vocabulary is %q; only byte-level BPE (gpt2) vocabularies are rebuilt", model)
	}
	pre, _ := f.String("tokenizer.ggml.pre")
	var preTok any
	switch regex, known := preTokenizers[pre]; {
	case known:
		preTok = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": regex}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
	case pre == "gpt-2" || pre == "default" || pre == "":
		preTok = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	default:
		return nil, nil, fmt.Sprintf("pre-tokenizer %q is not one codeplan can write (llama-bpe, qwen2, gpt-2)", pre)
	}
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) == 0 {
		return nil, nil, "the model has no tokenizer.ggml.tokens"
	}
	merges, _ := f.Strings("tokenizer.ggml.merges")
	types, _ := f.Int32s("tokenizer.ggml.token_type")
	vocab := make(map[string]int, len(tokens))
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var addedTokens []added
	for i, t := range tokens {
		if _, dup := vocab[t]; dup {
			return nil, nil, fmt.Sprintf("token %q appears twice in the vocabulary", t)
		}
		vocab[t] = i
		if i < len(types) && (types[i] == tokControl || types[i] == tokUserDefined) {
			addedTokens = append(addedTokens, added{ID: i, Content: t, Special: types[i] == tokControl})
		}
	}
	if merges == nil {
		merges = []string{}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	var post any = byteLevel
	addBOS, set := f.Bool("tokenizer.ggml.add_bos_token")
	if !set {
		addBOS = pre == "llama-bpe"
	}
	if addBOSOpt != nil {
		addBOS = *addBOSOpt
	}
	if addBOS {
		// llama.cpp puts BOS before every text; transformers does it in
		// the post-processor.
		if id, ok := f.Uint32("tokenizer.ggml.bos_token_id"); ok && int(id) < len(tokens) {
			bos := tokens[id]
			special := func(s string) map[string]any {
				return map[string]any{"SpecialToken": map[string]any{"id": s, "type_id": 0}}
			}
			seq := func(s string) map[string]any {
				return map[string]any{"Sequence": map[string]any{"id": s, "type_id": 0}}
			}
			post = map[string]any{"type": "Sequence", "processors": []any{byteLevel, map[string]any{
				"type": "TemplateProcessing", "single": []any{special(bos), seq("A")},
				"pair":           []any{special(bos), seq("A"), special(bos), seq("B")},
				"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []uint32{id}, "tokens": []string{bos}}},
			}}}
		}
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": addedTokens,
		"normalizer": nil, "pre_tokenizer": preTok, "post_processor": post, "decoder": byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges,
		},
	}
	tok, err := json.Marshal(tj)
	if err != nil {
		return nil, nil, err.Error()
	}
	tc := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false}
	name := func(key string) string {
		if id, ok := f.Uint32(key); ok && int(id) < len(tokens) {
			return tokens[id]
		}
		return ""
	}
	for key, field := range map[string]string{"tokenizer.ggml.bos_token_id": "bos_token", "tokenizer.ggml.eos_token_id": "eos_token", "tokenizer.ggml.padding_token_id": "pad_token"} {
		if s := name(key); s != "" {
			tc[field] = s
		}
	}
	tc["add_bos_token"] = addBOS
	if t, ok := f.String("tokenizer.chat_template"); ok {
		tc["chat_template"] = t
	}
	cfg, err = json.MarshalIndent(tc, "", "  ")
	if err != nil {
		return nil, nil, err.Error()
	}
	return append(tok, '\n'), append(cfg, '\n'), ""
}
