// Package llama is codeplan's own Go binding of llama.cpp.
//
// It compiles llama.cpp and ggml from the pinned Go module
// github.com/ollama/ollama (see the blank imports in cgo.go) and exposes a
// small Go API in which no C type leaks out:
//
//   - [LoadModel] opens a GGUF file as a [Model]: metadata, tokenizer and the
//     model's own chat template.
//   - [Model.NewContext] creates a [Context]: the KV cache and compute state in
//     which a [Batch] of tokens from many sequences is decoded together.
//   - [NewSampler] builds a sampler chain (greedy, temperature, top-k/p, min-p,
//     penalties, GBNF grammar).
//   - [Model.LoadAdapter] loads a GGUF LoRA adapter that a Context applies.
//
// Every failure on the C side becomes a Go error: files are checked before
// llama.cpp sees them, C++ exceptions are caught in shim.cpp, and inputs that
// would trip an assertion inside llama.cpp (token ids, sequence ids, batch
// sizes, logits indices) are validated in Go first.
//
// Concurrency: a Model is safe for concurrent use by many goroutines
// (tokenising, templates, creating contexts). A Context, a Batch and a
// Sampler are not: each belongs to one goroutine at a time. Close every
// object you create; closing a Model that still has open contexts,
// adapters, samplers or trainers fails with ErrInUse rather than leaving
// dangling pointers. Every Model method holds the model's read lock for the
// whole call, so Close waits for calls in progress, and any call after
// Close returns ErrClosed. Tests built with -tags invariants report every
// Context, Sampler and Batch collected without Close (see Leaks).
package llama
