package gguf

// Keys of the LoRA adapter header that llama.cpp's llama_adapter_lora_init
// reads.
const (
	KeyGeneralType  = "general.type"
	KeyAdapterType  = "adapter.type"
	KeyAdapterAlpha = "adapter.lora.alpha"
)

// NewLoRAWriter starts a LoRA adapter file for a base model of the given
// architecture: the header keys llama.cpp requires (general.type adapter,
// adapter.type lora, adapter.lora.alpha), its architecture and name. The
// caller adds the .lora_a/.lora_b tensors and any keys of its own. Written
// once here so that every adapter codeplan writes (trained or for tests)
// has the same header.
func NewLoRAWriter(arch, name string, alpha float32) *Writer {
	w := NewWriter()
	w.SetString(KeyGeneralType, "adapter")
	w.SetString("general.architecture", arch)
	w.SetString("general.name", name)
	w.SetString(KeyAdapterType, "lora")
	w.SetFloat32(KeyAdapterAlpha, alpha)
	return w
}
