// Package hf converts between codeplan's GGUF files and the layouts of
// Hugging Face's Python stack: LoRA adapters as PEFT writes them
// (adapter_config.json + adapter_model.safetensors), in both directions, and
// llama-architecture models as transformers loads them (config.json +
// model.safetensors, tokenizer.json where the GGUF's vocabulary allows).
//
// The mapping follows llama.cpp's convert_hf_to_gguf.py and
// convert_lora_to_gguf.py: the same tensor names, ggml's reversed dimension
// order (a PyTorch [out, in] matrix is ggml ne {in, out}, the same bytes),
// and, for the llama architecture only, the row permutation llama.cpp applies
// to q_proj and k_proj so that its RoPE rotates adjacent pairs where
// transformers rotates the two halves of each head. For a LoRA pair the
// permutation moves the rows of B (W = B·A, so W's rows are B's rows); A is
// unchanged.
package hf

import (
	"fmt"
	"regexp"
	"strconv"
)

// Supported architectures (general.architecture) and whether llama.cpp's
// converter permutes their q/k rows.
var permutesQK = map[string]bool{"llama": true, "qwen2": false, "qwen3": false}

// layerModules maps a transformers module inside a decoder layer to its
// GGUF tensor kind.
var layerModules = map[string]string{
	"self_attn.q_proj": "attn_q",
	"self_attn.k_proj": "attn_k",
	"self_attn.v_proj": "attn_v",
	"self_attn.o_proj": "attn_output",
	"mlp.gate_proj":    "ffn_gate",
	"mlp.up_proj":      "ffn_up",
	"mlp.down_proj":    "ffn_down",
}

// kindModules is layerModules inverted.
var kindModules = func() map[string]string {
	m := map[string]string{}
	for k, v := range layerModules {
		m[v] = k
	}
	return m
}()

// shortName is the last part of a module path ("q_proj"), the form PEFT's
// target_modules lists.
func shortName(module string) string {
	for i := len(module) - 1; i >= 0; i-- {
		if module[i] == '.' {
			return module[i+1:]
		}
	}
	return module
}

// A GGUF weight name that a LoRA may target: "blk.N.KIND.weight" or
// "output.weight".
var ggufWeight = regexp.MustCompile(`^blk\.(\d+)\.([a-z_]+)\.weight$`)

// ggufToHF maps a GGUF weight name to the transformers module path
// ("model.layers.3.self_attn.q_proj", "lm_head") and reports the layer
// (-1 for lm_head) and kind.
func ggufToHF(name string) (module string, layer int, kind string, err error) {
	if name == "output.weight" {
		return "lm_head", -1, "output", nil
	}
	m := ggufWeight.FindStringSubmatch(name)
	if m == nil {
		return "", 0, "", fmt.Errorf("tensor %s has no transformers counterpart a LoRA can target", name)
	}
	layer, err = strconv.Atoi(m[1])
	if err != nil {
		return "", 0, "", fmt.Errorf("tensor %s: bad layer number", name)
	}
	mod, ok := kindModules[m[2]]
	if !ok {
		return "", 0, "", fmt.Errorf("tensor %s: %s has no transformers counterpart a LoRA can target (want attn_q/k/v/output, ffn_gate/up/down or output)", name, m[2])
	}
	return fmt.Sprintf("model.layers.%d.%s", layer, mod), layer, m[2], nil
}

// hfToGGUF maps a module path to its GGUF weight name.
var hfLayer = regexp.MustCompile(`^model\.layers\.(\d+)\.((?:self_attn|mlp)\.[a-z_]+)$`)

func hfToGGUF(module string) (name string, layer int, kind string, ok bool) {
	if module == "lm_head" {
		return "output.weight", -1, "output", true
	}
	m := hfLayer.FindStringSubmatch(module)
	if m == nil {
		return "", 0, "", false
	}
	kind, ok = layerModules[m[2]]
	if !ok {
		return "", 0, "", false
	}
	layer, err := strconv.Atoi(m[1])
	if err != nil || len(m[1]) > 1 && m[1][0] == '0' {
		return "", 0, "", false
	}
	return fmt.Sprintf("blk.%d.%s.weight", layer, kind), layer, kind, true
}

// permuteRows reorders the rows of a row-major matrix of rows × rowBytes
// bytes between transformers' half-split RoPE layout and llama.cpp's
// interleaved one, heads at a time (llama.cpp's LlamaModel.permute). toGGUF
// picks the direction; the two are inverses. Within head h of d rows, GGUF
// row h·d + 2j + i is transformers row h·d + i·d/2 + j (i in {0, 1}).
func permuteRows(data []byte, rows, rowBytes, heads int, toGGUF bool) ([]byte, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("%d rows cannot be split into %d heads of an even size", rows, heads)
	}
	if len(data) != rows*rowBytes {
		return nil, fmt.Errorf("%d bytes, want %d rows of %d", len(data), rows, rowBytes)
	}
	d := rows / heads
	out := make([]byte, len(data))
	for h := 0; h < heads; h++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < d/2; j++ {
				g := h*d + 2*j + i
				t := h*d + i*d/2 + j
				src, dst := t, g
				if !toGGUF {
					src, dst = g, t
				}
				copy(out[dst*rowBytes:(dst+1)*rowBytes], data[src*rowBytes:(src+1)*rowBytes])
			}
		}
	}
	return out, nil
}
