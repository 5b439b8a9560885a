package gguf

// LlamaHeader is the metadata of a llama-architecture model that llama.cpp
// needs before it reads any tensor: sizes, RoPE and norm settings.
type LlamaHeader struct {
	Name          string  // general.name
	FileType      uint32  // general.file_type (llama_ftype: 0 = all F32, 1 = mostly F16, ...)
	ContextLength int     // llama.context_length, the context it was made for
	Embedding     int     // llama.embedding_length
	Layers        int     // llama.block_count
	FeedForward   int     // llama.feed_forward_length
	Heads         int     // llama.attention.head_count
	KVHeads       int     // llama.attention.head_count_kv
	RopeFreqBase  float32 // llama.rope.freq_base
	RMSEpsilon    float32 // llama.attention.layer_norm_rms_epsilon
}

// NewLlamaWriter starts a model file with h's metadata (and the default
// alignment), so that the writers of our test and random models state it
// once. llama.cpp reads these integers strictly as u32 and the floats as
// f32, so they are written with exactly those types. The vocabulary and the
// tensors are the caller's.
func NewLlamaWriter(h LlamaHeader) *Writer {
	w := NewWriter()
	w.SetString("general.architecture", "llama")
	w.SetString("general.name", h.Name)
	w.SetUint32("general.file_type", h.FileType)
	w.SetUint32(AlignmentKey, DefaultAlignment)
	w.SetUint32("llama.context_length", uint32(h.ContextLength))
	w.SetUint32("llama.embedding_length", uint32(h.Embedding))
	w.SetUint32("llama.block_count", uint32(h.Layers))
	w.SetUint32("llama.feed_forward_length", uint32(h.FeedForward))
	w.SetUint32("llama.attention.head_count", uint32(h.Heads))
	w.SetUint32("llama.attention.head_count_kv", uint32(h.KVHeads))
	w.SetUint32("llama.rope.dimension_count", uint32(h.Embedding/h.Heads))
	w.SetFloat32("llama.rope.freq_base", h.RopeFreqBase)
	w.SetFloat32("llama.attention.layer_norm_rms_epsilon", h.RMSEpsilon)
	return w
}
