package hf

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/safetensors"
)

// LlamaConfig is transformers' config.json for LlamaForCausalLM, the fields
// a llama-architecture GGUF determines.
type LlamaConfig struct {
	Architectures     []string `json:"architectures"`
	ModelType         string   `json:"model_type"`
	HiddenSize        int      `json:"hidden_size"`
	IntermediateSize  int      `json:"intermediate_size"`
	NumHiddenLayers   int      `json:"num_hidden_layers"`
	NumAttentionHeads int      `json:"num_attention_heads"`
	NumKeyValueHeads  int      `json:"num_key_value_heads"`
	HeadDim           int      `json:"head_dim"`
	HiddenAct         string   `json:"hidden_act"`
	MaxPositionEmbeds int      `json:"max_position_embeddings"`
	RMSNormEps        float32  `json:"rms_norm_eps"`
	RopeTheta         float32  `json:"rope_theta"`
	RopeScaling       any      `json:"rope_scaling"`
	AttentionBias     bool     `json:"attention_bias"`
	MLPBias           bool     `json:"mlp_bias"`
	VocabSize         int      `json:"vocab_size"`
	TieWordEmbeddings bool     `json:"tie_word_embeddings"`
	BOSTokenID        *int     `json:"bos_token_id,omitempty"`
	EOSTokenID        *int     `json:"eos_token_id,omitempty"`
	PadTokenID        *int     `json:"pad_token_id,omitempty"`
	TorchDType        string   `json:"torch_dtype"`
	InitializerRange  float32  `json:"initializer_range"`
	PretrainingTP     int      `json:"pretraining_tp"`
	UseCache          bool     `json:"use_cache"`
	AttentionDropout  float32  `json:"attention_dropout"`
}

// ModelExport describes what ExportModel wrote.
type ModelExport struct {
	Config    LlamaConfig
	Tensors   int
	Tokenizer string // "tokenizer.json written", or why not
	Files     []string
}

// ModelOptions adjust ExportModel.
type ModelOptions struct {
	// AddBOS says whether the tokenizer puts BOS before every text, as
	// llama.cpp decides it for this vocabulary (llama.Model.AddBOS). nil
	// uses tokenizer.ggml.add_bos_token, else llama.cpp's default for the
	// pre-tokenizer (llama-bpe: yes).
	AddBOS *bool
}

// ExportModel writes a llama-architecture GGUF model (F32, F16 or BF16
// weights) as a transformers folder: config.json, model.safetensors (the
// q/k rows permuted back to transformers' layout) and, for byte-level BPE
// vocabularies whose pre-tokenizer it knows, tokenizer.json and
// tokenizer_config.json. Quantized weights, RoPE scaling and tensors it has
// no name for are refused (ErrRefused).
func ExportModel(path, dir string, opts ModelOptions) (ModelExport, error) {
	var res ModelExport
	f, err := gguf.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if typ, _ := f.String(gguf.KeyGeneralType); typ == "adapter" {
		return res, refuse("%s is a LoRA adapter; use codeplan lora export", path)
	}
	arch, _ := f.String("general.architecture")
	if arch != "llama" {
		return res, refuse("%s: architecture %q; export-hf writes llama-architecture models only", path, arch)
	}
	u := func(key string) int {
		v, _ := f.Uint32("llama." + key)
		return int(v)
	}
	c := LlamaConfig{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenAct: "silu",
		HiddenSize: u("embedding_length"), IntermediateSize: u("feed_forward_length"),
		NumHiddenLayers: u("block_count"), NumAttentionHeads: u("attention.head_count"),
		NumKeyValueHeads: u("attention.head_count_kv"), MaxPositionEmbeds: u("context_length"),
		InitializerRange: 0.02, PretrainingTP: 1, UseCache: true,
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0 {
		return res, refuse("%s: llama.embedding_length, block_count, attention.head_count or feed_forward_length missing", path)
	}
	c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	if k := u("attention.key_length"); k != 0 {
		c.HeadDim = k
	}
	if rd := u("rope.dimension_count"); rd != 0 && rd != c.HeadDim {
		return res, refuse("%s: RoPE covers %d of %d head dimensions; transformers' llama rotates them all", path, rd, c.HeadDim)
	}
	if v := u("attention.value_length"); v != 0 && v != c.HeadDim {
		return res, refuse("%s: value heads of %d differ from key heads of %d", path, v, c.HeadDim)
	}
	c.RMSNormEps, _ = f.Float32("llama.attention.layer_norm_rms_epsilon")
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-5
	}
	c.RopeTheta, _ = f.Float32("llama.rope.freq_base")
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if st, ok := f.String("llama.rope.scaling.type"); ok && st != "none" && st != "" {
		return res, refuse("%s: RoPE scaling %q is not exported", path, st)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		return res, refuse("%s: Llama-3.1-style RoPE frequency factors (rope_freqs) are not exported", path)
	}
	for key, dst := range map[string]**int{"tokenizer.ggml.bos_token_id": &c.BOSTokenID, "tokenizer.ggml.eos_token_id": &c.EOSTokenID, "tokenizer.ggml.padding_token_id": &c.PadTokenID} {
		if v, ok := f.Uint32(key); ok {
			id := int(v)
			*dst = &id
		}
	}
	embd, ok := f.Tensor("token_embd.weight")
	if !ok || len(embd.Shape) != 2 {
		return res, refuse("%s: no token_embd.weight matrix", path)
	}
	c.VocabSize = int(embd.Shape[1])
	_, hasOutput := f.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOutput

	w := safetensors.NewWriter()
	w.SetMetadata("format", "pt")
	matrixType := ""
	for _, ti := range f.Tensors() {
		hfName, kind, err := modelTensorName(ti.Name)
		if err != nil {
			return res, refuse("%s: %v", path, err)
		}
		dt, ok := stType(ti.Type)
		if !ok {
			return res, refuse("%s: %s is %s; export-hf needs F32, F16 or BF16 weights (export the unquantized model)", path, ti.Name, ti.Type)
		}
		if len(ti.Shape) == 2 && kind != "" && matrixType == "" {
			matrixType = string(dt)
		}
		shape := make([]uint64, len(ti.Shape))
		for i, d := range ti.Shape {
			shape[len(shape)-1-i] = d
		}
		heads := 0
		switch kind {
		case "attn_q":
			heads = c.NumAttentionHeads
		case "attn_k":
			heads = c.NumKeyValueHeads
		}
		name, info := ti.Name, ti
		err = w.AddFunc(hfName, dt, shape, func(out io.Writer) error {
			data, err := f.TensorData(name)
			if err != nil {
				return err
			}
			if heads > 0 {
				if len(info.Shape) != 2 {
					return fmt.Errorf("%s is not a matrix", name)
				}
				rows := int(info.Shape[1])
				if data, err = permuteRows(data, rows, len(data)/rows, heads, false); err != nil {
					return fmt.Errorf("%s: %v", name, err)
				}
			}
			_, err = out.Write(data)
			return err
		})
		if err != nil {
			return res, err
		}
		res.Tensors++
	}
	switch safetensors.DType(matrixType) {
	case safetensors.F16:
		c.TorchDType = "float16"
	case safetensors.BF16:
		c.TorchDType = "bfloat16"
	default:
		c.TorchDType = "float32"
	}
	res.Config = c

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	if err := w.WriteFile(filepath.Join(dir, "model.safetensors")); err != nil {
		return res, err
	}
	cj, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return res, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), append(cj, '\n')); err != nil {
		return res, err
	}
	res.Files = []string{"model.safetensors", "config.json"}
	tok, tokCfg, why := tokenizerJSON(f, opts.AddBOS)
	if tok == nil {
		res.Tokenizer = "no tokenizer.json: " + why
		return res, nil
	}
	if err := writeFileAtomic(filepath.Join(dir, "tokenizer.json"), tok); err != nil {
		return res, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "tokenizer_config.json"), tokCfg); err != nil {
		return res, err
	}
	res.Files = append(res.Files, "tokenizer.json", "tokenizer_config.json")
	res.Tokenizer = "tokenizer.json written"
	return res, nil
}

// modelTensorName maps a GGUF tensor of a llama model to its transformers
// name; kind is the per-layer tensor kind ("" outside the layers).
func modelTensorName(name string) (hfName, kind string, err error) {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", "", nil
	case "output_norm.weight":
		return "model.norm.weight", "", nil
	case "output.weight":
		return "lm_head.weight", "", nil
	}
	var layer int
	var rest string
	if n, _ := fmt.Sscanf(name, "blk.%d.%s", &layer, &rest); n != 2 || fmt.Sprintf("blk.%d.%s", layer, rest) != name {
		return "", "", fmt.Errorf("tensor %s has no transformers name", name)
	}
	kind = strings.TrimSuffix(rest, ".weight")
	prefix := fmt.Sprintf("model.layers.%d.", layer)
	switch kind {
	case "attn_norm":
		return prefix + "input_layernorm.weight", kind, nil
	case "ffn_norm":
		return prefix + "post_attention_layernorm.weight", kind, nil
	}
	if mod, ok := kindModules[kind]; ok && strings.HasSuffix(rest, ".weight") {
		return prefix + mod + ".weight", kind, nil
	}
	return "", "", fmt.Errorf("tensor %s has no transformers name (biases and other extras are not exported)", name)
}
