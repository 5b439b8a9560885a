package llama

/*
#include <stdlib.h>
#include "shim.h"
#include "graphinfo.h"
#include "ggml-cpu.h"
#include "ggml.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// SeqID identifies one sequence (one conversation or row) inside a Context.
type SeqID = lm.SeqID

// Pos is a token position inside a sequence.
type Pos = lm.Pos

// ContextOptions configure a Context. Zero values pick sensible defaults.
type ContextOptions struct {
	// ContextSize is the number of tokens the KV cache holds, shared by all
	// sequences (0 = the model's training context length).
	ContextSize int
	// BatchSize is the most tokens one Decode call may carry (default 512).
	BatchSize int
	// UBatchSize is the physical micro-batch size (default = BatchSize).
	UBatchSize int
	// Sequences is the most distinct sequences decoded together (default 1).
	Sequences int
	// Threads used for generation and for prompt processing (0 = all cores).
	Threads, BatchThreads int
	// FlashAttention is "auto" (default), "on" or "off".
	FlashAttention string
	// CacheTypeK and CacheTypeV are the KV cache types: "f16" (default),
	// "f32", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1".
	CacheTypeK, CacheTypeV string
	// Poll sets how hard idle CPU worker threads spin-wait for work, from 0
	// (sleep at once) to 100; nil keeps ggml's default (50). Spinning is
	// fastest on an idle machine and much slower when the cores are shared.
	Poll *int
	// UnifiedKV makes all sequences share one pool of ContextSize cells
	// instead of each getting its own ContextSize/Sequences stream. A shared
	// pool lets one sequence grow past its share, but every token then
	// attends over the cells of all sequences (masked), which costs far more
	// when sequences do not share a prefix; so it is off by default.
	UnifiedKV bool
	// RecordGraph makes the context note every graph node it computes, for
	// RecordedGraph: checks of llama.cpp's own graphs (decoding, scoring,
	// adapters) against the rules of a backend that is not present. It costs
	// a callback per node.
	RecordGraph bool
}

// Context holds a KV cache and the compute state to decode batches. It is
// not safe for concurrent use.
type Context struct {
	c        *C.struct_llama_context
	model    *Model
	mem      C.llama_memory_t
	nCtx     int
	nBatch   int
	nSeq     int
	unified  bool
	nVocab   int
	pool     *C.struct_ggml_threadpool
	outputs  []bool // batch indices of the last Decode that carry logits
	adapters map[*Adapter]float32
	recorder *C.cp_graph_recorder // RecordGraph; owned, freed after the context
}

var ggmlTypes = map[string]C.enum_ggml_type{
	"f32": C.GGML_TYPE_F32, "f16": C.GGML_TYPE_F16, "bf16": C.GGML_TYPE_BF16,
	"q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0, "q4_1": C.GGML_TYPE_Q4_1,
	"q5_0": C.GGML_TYPE_Q5_0, "q5_1": C.GGML_TYPE_Q5_1,
}

// MaxSequences is the most sequences one Context can hold (llama.cpp's
// compile-time limit).
func MaxSequences() int { return int(C.llama_max_parallel_sequences()) }

// NewContext creates a decoding context for the model.
func (m *Model) NewContext(opts ContextOptions) (ctx *Context, err error) {
	err = m.use(func(mc *C.struct_llama_model, v *C.struct_llama_vocab) error {
		ctx, err = m.newContext(mc, v, opts)
		return err
	})
	return ctx, err
}

// newContext is NewContext inside m.use.
func (m *Model) newContext(mc *C.struct_llama_model, vocab *C.struct_llama_vocab, opts ContextOptions) (*Context, error) {
	p := C.llama_context_default_params()
	if opts.ContextSize < 0 || opts.BatchSize < 0 || opts.UBatchSize < 0 || opts.Sequences < 0 {
		return nil, fmt.Errorf("new context: negative size in %+v", opts)
	}
	nCtx := opts.ContextSize
	if nCtx == 0 {
		nCtx = int(C.llama_model_n_ctx_train(mc))
	}
	nBatch := opts.BatchSize
	if nBatch == 0 {
		nBatch = 512
	}
	nUBatch := opts.UBatchSize
	if nUBatch == 0 || nUBatch > nBatch {
		nUBatch = nBatch
	}
	nSeq := opts.Sequences
	if nSeq == 0 {
		nSeq = 1
	}
	if max := int(C.llama_max_parallel_sequences()); nSeq > max {
		return nil, fmt.Errorf("new context: %d sequences requested, llama.cpp supports at most %d", nSeq, max)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	bthreads := opts.BatchThreads
	if bthreads <= 0 {
		bthreads = threads
	}
	p.n_ctx = C.uint32_t(nCtx)
	p.n_batch = C.uint32_t(nBatch)
	p.n_ubatch = C.uint32_t(nUBatch)
	p.n_seq_max = C.uint32_t(nSeq)
	p.n_threads = C.int32_t(threads)
	p.n_threads_batch = C.int32_t(bthreads)
	p.kv_unified = C.bool(opts.UnifiedKV)
	p.no_perf = C.bool(false)
	switch strings.ToLower(opts.FlashAttention) {
	case "", "auto":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	case "on", "true", "1":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case "off", "false", "0":
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		return nil, fmt.Errorf("new context: flash attention %q: want auto, on or off", opts.FlashAttention)
	}
	var headK, headV C.uint32_t
	C.cp_head_dims(mc, &headK, &headV)
	for _, kv := range []struct {
		name, which string
		head        C.uint32_t
		dst         *C.enum_ggml_type
	}{{opts.CacheTypeK, "K", headK, &p.type_k}, {opts.CacheTypeV, "V", headV, &p.type_v}} {
		if kv.name == "" {
			continue
		}
		t, ok := ggmlTypes[strings.ToLower(kv.name)]
		if !ok {
			return nil, fmt.Errorf("new context: %w: unknown %s cache type %q (want one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1)", ErrKVCache, kv.which, kv.name)
		}
		// ggml stores a quantized cache in blocks along each head; a head
		// that is not a whole number of blocks aborts inside ggml's
		// attention kernels (llama.cpp checks this only for "auto").
		if C.ggml_is_quantized(t) {
			if blk := C.ggml_blck_size(t); blk > 0 && kv.head%C.uint32_t(blk) != 0 {
				return nil, fmt.Errorf("new context: %w: %s cache type %s stores blocks of %d values, which do not divide this model's head size %d (use f16, bf16 or f32)", ErrKVCache, kv.which, kv.name, blk, kv.head)
			}
		}
		*kv.dst = t
	}
	if C.ggml_is_quantized(p.type_v) && p.flash_attn_type == C.LLAMA_FLASH_ATTN_TYPE_DISABLED {
		return nil, fmt.Errorf("new context: %w: a quantized V cache (%s) needs flash attention on or auto", ErrKVCache, opts.CacheTypeV)
	}
	var rec *C.cp_graph_recorder
	if opts.RecordGraph {
		if rec = C.cp_graph_recorder_new(); rec == nil {
			return nil, fmt.Errorf("new context: out of memory for the graph recorder")
		}
		C.cp_graph_recorder_attach(rec, &p)
	}
	eb := newErrBuf()
	defer eb.free()
	cc := C.cp_new_context(mc, p, eb.p, errBufLen)
	if cc == nil {
		if rec != nil {
			C.cp_graph_recorder_free(rec)
		}
		return nil, fmt.Errorf("new context (ctx %d, batch %d, seqs %d): %s", nCtx, nBatch, nSeq, eb)
	}
	var pool *C.struct_ggml_threadpool
	if opts.Poll != nil {
		tp := C.ggml_threadpool_params_default(C.int(threads))
		tp.poll = C.uint32_t(min(max(*opts.Poll, 0), 100))
		pool = C.ggml_threadpool_new(&tp)
		if pool == nil {
			C.llama_free(cc)
			if rec != nil {
				C.cp_graph_recorder_free(rec)
			}
			return nil, fmt.Errorf("new context: cannot create a CPU thread pool of %d threads", threads)
		}
		C.llama_attach_threadpool(cc, pool, pool)
	}
	m.retain(userContexts)
	c := &Context{
		pool:     pool,
		c:        cc,
		model:    m,
		mem:      C.llama_get_memory(cc),
		nCtx:     int(C.llama_n_ctx(cc)),
		nBatch:   int(C.llama_n_batch(cc)),
		nSeq:     int(C.llama_n_seq_max(cc)),
		unified:  opts.UnifiedKV,
		nVocab:   int(C.llama_vocab_n_tokens(vocab)),
		adapters: map[*Adapter]float32{},
		recorder: rec,
	}
	trackLeak(c, "Context", func(c *Context) bool { return c.c != nil })
	return c, nil
}

// Close frees the context (and detaches its adapters).
func (c *Context) Close() error {
	if c.c == nil {
		return nil
	}
	for a := range c.adapters {
		a.detached()
	}
	c.adapters = nil
	C.llama_free(c.c)
	c.c = nil
	if c.pool != nil {
		C.ggml_threadpool_free(c.pool)
		c.pool = nil
	}
	if c.recorder != nil { // only after llama_free: the scheduler calls it
		C.cp_graph_recorder_free(c.recorder)
		c.recorder = nil
	}
	c.model.release(userContexts)
	return nil
}

// Model is the model this context runs.
func (c *Context) Model() *Model { return c.model }

// ContextSize is the number of tokens the KV cache holds.
func (c *Context) ContextSize() int { return c.nCtx }

// BatchSize is the most tokens one Decode may carry.
func (c *Context) BatchSize() int { return c.nBatch }

// Sequences is the most sequences the context tracks (valid SeqIDs are
// 0..Sequences()-1).
func (c *Context) Sequences() int { return c.nSeq }

// SetThreads changes the number of threads for generation and batches.
func (c *Context) SetThreads(gen, batch int) {
	if c.c != nil && gen > 0 && batch > 0 {
		C.llama_set_n_threads(c.c, C.int32_t(gen), C.int32_t(batch))
	}
}

// Decode runs the model on a batch. Afterwards, Logits and samplers can read
// the logits of every token added with logits=true. A batch that does not fit
// in the remaining KV cache returns ErrContextFull and leaves the cache as
// it was.
func (c *Context) Decode(b *Batch) error {
	if c.c == nil {
		return fmt.Errorf("decode: context %w", ErrClosed)
	}
	if b == nil || b.c.n_tokens == 0 {
		return fmt.Errorf("%w: empty batch", ErrInvalidBatch)
	}
	n := int(b.c.n_tokens)
	if n > c.nBatch {
		return fmt.Errorf("%w: %d tokens exceed the batch size %d", ErrInvalidBatch, n, c.nBatch)
	}
	if err := b.validate(c.nVocab, c.nSeq); err != nil {
		return err
	}
	eb := newErrBuf()
	defer eb.free()
	rc := C.cp_decode(c.c, b.c, eb.p, errBufLen)
	c.outputs = c.outputs[:0]
	switch {
	case rc == 0:
		logits := unsafe.Slice(b.c.logits, n)
		for i := 0; i < n; i++ {
			c.outputs = append(c.outputs, logits[i] != 0)
		}
		return nil
	case rc == 1:
		return fmt.Errorf("%w: no room for %d more tokens in a context of %d", ErrContextFull, n, c.nCtx)
	case rc == 2:
		return fmt.Errorf("%w: aborted", ErrDecode)
	case rc == -1:
		return fmt.Errorf("%w: %s", ErrInvalidBatch, eb)
	default:
		return fmt.Errorf("%w (code %d): %s", ErrDecode, int(rc), eb)
	}
}

// checkOutput verifies that batch index i of the last Decode has logits.
func (c *Context) checkOutput(i int) error {
	if c.c == nil {
		return fmt.Errorf("logits: context %w", ErrClosed)
	}
	if i < 0 || i >= len(c.outputs) || !c.outputs[i] {
		return fmt.Errorf("logits: batch index %d has no logits (last batch had %d tokens)", i, len(c.outputs))
	}
	return nil
}

// Logits copies the logits (one per vocabulary token) of batch index i of
// the last Decode into dst (grown as needed) and returns it.
func (c *Context) Logits(i int, dst []float32) ([]float32, error) {
	if err := c.checkOutput(i); err != nil {
		return nil, err
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("logits: llama.cpp has none for batch index %d", i)
	}
	dst = append(dst[:0], unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nVocab)...)
	return dst, nil
}

func (c *Context) checkSeq(op string, s SeqID) error {
	if c.c == nil {
		return fmt.Errorf("%s: context %w", op, ErrClosed)
	}
	if s < 0 || int(s) >= c.nSeq {
		return fmt.Errorf("%s: sequence %d outside 0..%d", op, s, c.nSeq-1)
	}
	return nil
}

// ClearKV empties the KV cache of every sequence.
func (c *Context) ClearKV() {
	if c.c != nil {
		C.llama_memory_clear(c.mem, C.bool(true))
	}
}

// RemoveTokens drops positions [from, to) of sequence s from the KV cache
// (to < 0 means to the end; from < 0 means from the start).
func (c *Context) RemoveTokens(s SeqID, from, to Pos) error {
	if err := c.checkSeq("remove tokens", s); err != nil {
		return err
	}
	if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(s), C.llama_pos(from), C.llama_pos(to)) {
		return fmt.Errorf("remove tokens: cannot remove part of sequence %d from this cache", s)
	}
	return nil
}

// RemoveSeq drops all of sequence s from the KV cache.
func (c *Context) RemoveSeq(s SeqID) error { return c.RemoveTokens(s, -1, -1) }

// CopySeq makes positions [from, to) of sequence src also belong to dst, so a
// shared prompt is computed once. Without UnifiedKV only whole sequences
// can be copied (from = to = -1).
func (c *Context) CopySeq(src, dst SeqID, from, to Pos) error {
	if err := c.checkSeq("copy sequence", src); err != nil {
		return err
	}
	if err := c.checkSeq("copy sequence", dst); err != nil {
		return err
	}
	if !c.unified && (from >= 0 || to >= 0) {
		return fmt.Errorf("copy sequence: without UnifiedKV only whole sequences can be copied")
	}
	C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(from), C.llama_pos(to))
	return nil
}

// KeepSeq removes every sequence but s.
func (c *Context) KeepSeq(s SeqID) error {
	if err := c.checkSeq("keep sequence", s); err != nil {
		return err
	}
	if c.unified {
		C.llama_memory_seq_keep(c.mem, C.llama_seq_id(s))
		return nil
	}
	// With one stream per sequence llama.cpp's seq_keep only clears within
	// the stream of s, so drop the other sequences one by one.
	for o := 0; o < c.nSeq; o++ {
		if SeqID(o) != s {
			C.llama_memory_seq_rm(c.mem, C.llama_seq_id(o), -1, -1)
		}
	}
	return nil
}

// SeqLen is one past the largest position of sequence s in the cache
// (0 when the sequence is empty).
func (c *Context) SeqLen(s SeqID) (int, error) {
	if err := c.checkSeq("sequence length", s); err != nil {
		return 0, err
	}
	return int(C.llama_memory_seq_pos_max(c.mem, C.llama_seq_id(s))) + 1, nil
}

// Perf holds llama.cpp's performance counters for a context.
type Perf struct {
	LoadMs          float64
	PromptMs        float64 // time spent processing prompt tokens
	PromptTokens    int
	GenerateMs      float64 // time spent in single-token decode steps
	GeneratedTokens int
}

// PromptTokensPerSecond is prompt-processing throughput.
func (p Perf) PromptTokensPerSecond() float64 {
	if p.PromptMs <= 0 {
		return 0
	}
	return float64(p.PromptTokens) / p.PromptMs * 1000
}

// GenerateTokensPerSecond is generation throughput.
func (p Perf) GenerateTokensPerSecond() float64 {
	if p.GenerateMs <= 0 {
		return 0
	}
	return float64(p.GeneratedTokens) / p.GenerateMs * 1000
}

// Perf returns the performance counters since creation or ResetPerf.
func (c *Context) Perf() Perf {
	if c.c == nil {
		return Perf{}
	}
	d := C.llama_perf_context(c.c)
	return Perf{
		LoadMs:          float64(d.t_load_ms),
		PromptMs:        float64(d.t_p_eval_ms),
		PromptTokens:    int(d.n_p_eval),
		GenerateMs:      float64(d.t_eval_ms),
		GeneratedTokens: int(d.n_eval),
	}
}

// ResetPerf zeroes the performance counters.
func (c *Context) ResetPerf() {
	if c.c != nil {
		C.llama_perf_context_reset(c.c)
	}
}

// KVCells describes the KV cells of the stream that holds one sequence (with
// UnifiedKV, the one stream all sequences share).
type KVCells struct {
	Used    int // cells holding at least one token
	Highest int // one past the highest used cell (0 when empty)
	Size    int // the stream's cells
	// Attended is how many cells a decode that includes this stream
	// attends over: Highest padded up to 256 (at least 256), capped at
	// Size. llama.cpp takes the largest value over the streams of a batch.
	Attended int
}

// KVCells reports the cells of the stream that holds sequence s. It reads
// llama.cpp's bookkeeping only (no decode, no copy).
func (c *Context) KVCells(s SeqID) (KVCells, error) {
	if err := c.checkSeq("kv cells", s); err != nil {
		return KVCells{}, err
	}
	stream := int32(s)
	if c.unified {
		stream = 0
	}
	var used, hi, size, nkv C.uint32_t
	if !C.cp_kv_cells(c.c, C.int32_t(stream), &used, &hi, &size, &nkv) {
		return KVCells{}, fmt.Errorf("kv cells: this model's memory is not a KV cache")
	}
	return KVCells{Used: int(used), Highest: int(hi), Size: int(size), Attended: int(nkv)}, nil
}

// UnifiedKV reports whether all sequences share one pool of cells.
func (c *Context) UnifiedKV() bool { return c.unified }

// SaveSeq returns a copy of sequence s's KV cells (positions and keys and
// values), for LoadSeq. It costs what the sequence holds, not the context.
func (c *Context) SaveSeq(s SeqID) ([]byte, error) {
	if err := c.checkSeq("save sequence", s); err != nil {
		return nil, err
	}
	n := C.llama_state_seq_get_size(c.c, C.llama_seq_id(s))
	if n == 0 {
		return nil, fmt.Errorf("save sequence %d: llama.cpp reports no state", s)
	}
	buf := make([]byte, int(n))
	got := C.llama_state_seq_get_data(c.c, (*C.uint8_t)(unsafe.Pointer(&buf[0])), n, C.llama_seq_id(s))
	if got == 0 || got > n {
		return nil, fmt.Errorf("save sequence %d: llama.cpp could not write its state", s)
	}
	return buf[:int(got)], nil
}

// LoadSeq replaces sequence dst's cells with a state SaveSeq returned (from
// any sequence of this context). Unlike CopySeq between the streams of a
// context without UnifiedKV, which copies a whole stream and makes the next
// decode re-plan its graph, it writes only the saved cells, from the start
// of dst's stream.
func (c *Context) LoadSeq(state []byte, dst SeqID) error {
	if err := c.checkSeq("load sequence", dst); err != nil {
		return err
	}
	if len(state) == 0 {
		return fmt.Errorf("load sequence %d: empty state", dst)
	}
	got := C.llama_state_seq_set_data(c.c, (*C.uint8_t)(unsafe.Pointer(&state[0])), C.size_t(len(state)), C.llama_seq_id(dst))
	if got == 0 {
		return fmt.Errorf("load sequence %d: llama.cpp could not restore the state (see its log)", dst)
	}
	return nil
}
