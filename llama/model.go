package llama

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/message"
)

// Token is a vocabulary id (lm.Token: the jobs' cgo-free contract uses the
// same type).
type Token = lm.Token

// ModelOptions control how a GGUF file is loaded.
type ModelOptions struct {
	// GPULayers is the number of layers to offload to a GPU backend
	// (0 = CPU only, -1 = all). Needs LoadBackends first.
	GPULayers int
	// NoMmap reads the weights into memory instead of mapping the file.
	NoMmap bool
	// VocabOnly loads only the tokenizer and metadata (fast, no weights).
	VocabOnly bool
	// NoAlloc loads the tensors' shapes but allocates and reads no weight
	// data (llama.cpp's no_alloc): enough to build graphs for checking and
	// sizing (TrainerOptions.GraphOnly), at any model size, in seconds.
	// Such a model cannot decode.
	NoAlloc bool
	// Repack stores Q4_0, Q4_K and IQ4_NL matrices that run on the CPU in
	// ggml's interleaved layout for its multi-row GEMM kernels, as llama.cpp
	// does by default: faster prompt processing and generation, at the cost
	// of copying those weights out of the mapped file while loading. Leave it
	// off for training: backward passes read the weights with the plain
	// layout's kernels.
	Repack bool
	// Progress, if set, is called with values from 0 to 1 while loading;
	// returning false cancels the load.
	Progress func(fraction float32) bool
}

// Model is a loaded GGUF model. It is safe for concurrent use.
//
// Every call reaches the C model through use, which holds the read lock for
// the whole call, so Close (which takes the write lock) waits for calls in
// progress and every later call gets ErrClosed. Every object that keeps a
// pointer into the model (a Context, Sampler, Adapter or Trainer) is
// counted in users, and Close refuses with ErrInUse while any is open.
type Model struct {
	mu    sync.RWMutex
	c     *C.struct_llama_model
	vocab *C.struct_llama_vocab
	path  string
	users [numUserKinds]atomic.Int64

	// maxPiece is the longest text one token stands for (see MaxTextBytes),
	// computed once on first use.
	maxPieceOnce sync.Once
	maxPiece     int
}

//export goProgress
func goProgress(progress C.float, handle C.uintptr_t) C.bool {
	f := cgo.Handle(handle).Value().(func(float32) bool)
	return C.bool(f(float32(progress)))
}

// CheckGGUF verifies that path is a readable regular file that starts with
// the GGUF magic, so that obviously wrong files get a precise Go error before
// llama.cpp sees them.
func CheckGGUF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("model %s: is a directory, want a .gguf file", path)
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return fmt.Errorf("model %s: %w (file is %d bytes)", path, ErrNotGGUF, st.Size())
	}
	if !bytes.Equal(magic[:], []byte("GGUF")) {
		return fmt.Errorf("model %s: %w (starts with %q)", path, ErrNotGGUF, magic[:])
	}
	return nil
}

// weightTypes are the tensor types ggml can use as model weights.
var weightTypes = func() map[gguf.TensorType]bool {
	m := map[gguf.TensorType]bool{}
	for _, t := range []gguf.TensorType{
		gguf.TensorF32, gguf.TensorF16, gguf.TensorBF16, gguf.TensorQ4_0, gguf.TensorQ4_1, gguf.TensorQ5_0,
		gguf.TensorQ5_1, gguf.TensorQ8_0, gguf.TensorQ2_K, gguf.TensorQ3_K, gguf.TensorQ4_K, gguf.TensorQ5_K,
		gguf.TensorQ6_K, gguf.TensorIQ2_XXS, gguf.TensorIQ2_XS, gguf.TensorIQ3_XXS, gguf.TensorIQ1_S,
		gguf.TensorIQ4_NL, gguf.TensorIQ3_S, gguf.TensorIQ2_S, gguf.TensorIQ4_XS, gguf.TensorIQ1_M,
		gguf.TensorTQ1_0, gguf.TensorTQ2_0, gguf.TensorMXFP4,
	} {
		m[t] = true
	}
	return m
}()

// checkHeader parses the GGUF header with our pure-Go reader before
// llama.cpp sees the file. The reader bounds-checks every count, string and
// tensor against the file size, and the hyper-parameters checked here are
// ones llama.cpp would otherwise trip an assertion on (abort, not an error)
// when a corrupt file sets them to zero.
func checkHeader(path string) error {
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// ggml maps tensor data in place and asserts 32-byte alignment.
	if a := f.Alignment; a == 0 || a%32 != 0 || a&(a-1) != 0 {
		return fmt.Errorf("general.alignment %d: want a power of two that is a multiple of 32", a)
	}
	// Keys that llama.cpp reads with unchecked getters, which assert on a
	// type mismatch instead of returning an error.
	for key, want := range map[string]gguf.ValueType{
		"general.architecture": gguf.TypeString, "general.type": gguf.TypeString,
		"adapter.type": gguf.TypeString, "adapter.lora.alpha": gguf.TypeFloat32,
	} {
		if kv, ok := f.Lookup(key); ok && kv.Type != want {
			return fmt.Errorf("%s has type %v, want %v", key, kv.Type, want)
		}
	}
	arch, ok := f.String("general.architecture")
	if !ok || arch == "" {
		return fmt.Errorf("no general.architecture in the header")
	}
	for _, key := range []string{"block_count", "embedding_length", "context_length", "attention.head_count", "attention.head_count_kv"} {
		if v, ok := f.Uint32(arch + "." + key); ok && v == 0 {
			return fmt.Errorf("%s.%s is 0", arch, key)
		}
	}
	// Grouped-query attention shares each KV head among a whole number of
	// query heads; other ratios trip a reshape assertion in the graph.
	heads, okH := f.Uint32(arch + ".attention.head_count")
	kvHeads, okKV := f.Uint32(arch + ".attention.head_count_kv")
	if okH && okKV && (kvHeads > heads || heads%kvHeads != 0) {
		return fmt.Errorf("%s.attention.head_count %d is not a multiple of head_count_kv %d", arch, heads, kvHeads)
	}
	// A zero dimension makes ggml divide by zero (SIGFPE) in some operators,
	// and the integer and intermediate types have no matrix kernels (a call
	// through a null function pointer).
	for _, t := range f.Tensors() {
		if !weightTypes[t.Type] {
			return fmt.Errorf("tensor %s has type %s, which is not a weight type", t.Name, t.Type)
		}
		for _, d := range t.Shape {
			if d == 0 {
				return fmt.Errorf("tensor %s has a zero dimension %v", t.Name, t.Shape)
			}
		}
	}
	// Float hyper-parameters feed ggml operators that assert on them (a
	// negative epsilon aborts the first decode).
	for _, kv := range f.KVs {
		v, isF32 := kv.Value.(float32)
		if !isF32 || !strings.HasPrefix(kv.Key, arch+".") {
			continue
		}
		f64 := float64(v)
		if math.IsNaN(f64) || math.IsInf(f64, 0) || (strings.Contains(kv.Key, "epsilon") && v < 0) {
			return fmt.Errorf("%s = %g is out of range", kv.Key, v)
		}
	}
	// The vocabulary: llama.cpp asserts that token texts are unique and
	// indexes the per-token arrays by token id without a length check.
	if tokens, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		seen := make(map[string]struct{}, len(tokens))
		for i, t := range tokens {
			// llama.cpp reads token texts as C strings: a NUL ends them.
			if nul := strings.IndexByte(t, 0); nul >= 0 {
				t = t[:nul]
			}
			if _, dup := seen[t]; dup {
				return fmt.Errorf("tokenizer.ggml.tokens: token %d (%q) appears twice", i, t)
			}
			seen[t] = struct{}{}
		}
		for _, key := range []string{"tokenizer.ggml.token_type", "tokenizer.ggml.scores"} {
			if kv, ok := f.Lookup(key); ok {
				arr, isArr := kv.Value.(gguf.Array)
				if !isArr || arr.Len() != len(tokens) {
					return fmt.Errorf("%s does not have one entry per token (%d tokens)", key, len(tokens))
				}
			}
		}
	}
	return nil
}

// LoadModel loads a GGUF model file.
func LoadModel(path string, opts ModelOptions) (*Model, error) {
	Init()
	if err := CheckGGUF(path); err != nil {
		return nil, err
	}
	if err := checkHeader(path); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrModelLoad, path, err)
	}
	params := C.llama_model_default_params()
	params.n_gpu_layers = C.int32_t(opts.GPULayers)
	if opts.GPULayers < 0 {
		params.n_gpu_layers = 999
	}
	// llama.cpp asserts no_alloc is never combined with mapped weights
	params.use_mmap = C.bool(!opts.NoMmap && !opts.NoAlloc)
	params.vocab_only = C.bool(opts.VocabOnly)
	params.no_alloc = C.bool(opts.NoAlloc)
	params.use_extra_bufts = C.bool(opts.Repack)
	var handle cgo.Handle
	if opts.Progress != nil {
		handle = cgo.NewHandle(opts.Progress)
		defer handle.Delete()
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	eb := newErrBuf()
	defer eb.free()
	m := C.cp_load_model(cpath, params, C.uintptr_t(handle), eb.p, errBufLen)
	if m == nil {
		return nil, fmt.Errorf("%w %s: %s", ErrModelLoad, path, eb)
	}
	return &Model{c: m, vocab: C.llama_model_get_vocab(m), path: path}, nil
}

// userKind names the objects that hold pointers into a model.
type userKind int

const (
	userContexts userKind = iota
	userAdapters
	userSamplers
	userTrainers
	numUserKinds
)

var userKindNames = [numUserKinds]string{"contexts", "adapters", "samplers", "trainers"}

// retain counts one more user of kind. Call it only inside use, so that it
// cannot race Close.
func (m *Model) retain(k userKind) { m.users[k].Add(1) }

// release counts one user of kind less (its Close).
func (m *Model) release(k userKind) { m.users[k].Add(-1) }

// Close frees the model. It waits for calls in progress, and fails with
// ErrInUse while contexts, adapters, samplers or trainers created from it
// are still open. Closing twice is a no-op.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		return nil
	}
	var open []string
	for k := range m.users {
		if n := m.users[k].Load(); n > 0 {
			open = append(open, fmt.Sprintf("%d %s", n, userKindNames[k]))
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("close model %s: %w (%s open)", m.path, ErrInUse, strings.Join(open, ", "))
	}
	C.llama_model_free(m.c)
	m.c = nil
	m.vocab = nil
	return nil
}

// use is the one checked path to the C model: it runs fn with the model
// and its vocabulary while holding the read lock, so Close cannot free them
// during the call, and returns ErrClosed after Close. fn must not call
// other methods of m (a nested read lock deadlocks while Close waits).
func (m *Model) use(fn func(c *C.struct_llama_model, v *C.struct_llama_vocab) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return fmt.Errorf("model %s: %w", m.path, ErrClosed)
	}
	return fn(m.c, m.vocab)
}

// Path is the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// ModelInfo summarises a model's metadata.
type ModelInfo struct {
	Path            string            `json:"path"`
	Architecture    string            `json:"architecture"`
	Name            string            `json:"name"`
	Description     string            `json:"description"`    // llama.cpp's one-line description, e.g. "llama 8B Q4_K - Medium"
	ContextLength   int               `json:"context_length"` // training context length
	EmbeddingLength int               `json:"embedding_length"`
	Layers          int               `json:"layers"`
	Heads           int               `json:"heads"`
	HeadsKV         int               `json:"heads_kv"`
	Params          uint64            `json:"params"`     // parameter count
	SizeBytes       uint64            `json:"size_bytes"` // size of all tensors
	VocabSize       int               `json:"vocab_size"`
	VocabType       string            `json:"vocab_type"`
	ChatTemplate    string            `json:"chat_template,omitempty"` // the model's Jinja chat template, "" if none
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// Info returns the model's metadata.
func (m *Model) Info() (ModelInfo, error) {
	var info ModelInfo
	err := m.use(func(c *C.struct_llama_model, v *C.struct_llama_vocab) error {
		info = m.info(c, v)
		return nil
	})
	return info, err
}

func (m *Model) info(c *C.struct_llama_model, vocab *C.struct_llama_vocab) ModelInfo {
	info := ModelInfo{
		Path:            m.path,
		ContextLength:   int(C.llama_model_n_ctx_train(c)),
		EmbeddingLength: int(C.llama_model_n_embd(c)),
		Layers:          int(C.llama_model_n_layer(c)),
		Heads:           int(C.llama_model_n_head(c)),
		HeadsKV:         int(C.llama_model_n_head_kv(c)),
		Params:          uint64(C.llama_model_n_params(c)),
		SizeBytes:       uint64(C.llama_model_size(c)),
		VocabSize:       int(C.llama_vocab_n_tokens(vocab)),
		Metadata:        map[string]string{},
	}
	switch C.llama_vocab_type(vocab) {
	case C.LLAMA_VOCAB_TYPE_SPM:
		info.VocabType = "spm"
	case C.LLAMA_VOCAB_TYPE_BPE:
		info.VocabType = "bpe"
	case C.LLAMA_VOCAB_TYPE_WPM:
		info.VocabType = "wpm"
	case C.LLAMA_VOCAB_TYPE_UGM:
		info.VocabType = "ugm"
	case C.LLAMA_VOCAB_TYPE_RWKV:
		info.VocabType = "rwkv"
	default:
		info.VocabType = "none"
	}
	buf := make([]byte, 4096)
	cbuf := (*C.char)(unsafe.Pointer(&buf[0]))
	if n := C.llama_model_desc(c, cbuf, C.size_t(len(buf))); n > 0 {
		info.Description = describeSize(C.GoString(cbuf), info.Params)
	}
	count := int(C.llama_model_meta_count(c))
	for i := 0; i < count; i++ {
		k := metaString(func(p *C.char, n C.size_t) C.int32_t { return C.llama_model_meta_key_by_index(c, C.int32_t(i), p, n) })
		v := metaString(func(p *C.char, n C.size_t) C.int32_t {
			return C.llama_model_meta_val_str_by_index(c, C.int32_t(i), p, n)
		})
		info.Metadata[k] = v
	}
	info.Architecture = info.Metadata["general.architecture"]
	info.Name = info.Metadata["general.name"]
	if t := C.llama_model_chat_template(c, nil); t != nil {
		info.ChatTemplate = C.GoString(t)
	}
	return info
}

// metaString calls a llama.cpp metadata getter, growing the buffer when the
// value is longer than the first guess (chat templates can be many KB).
func metaString(get func(*C.char, C.size_t) C.int32_t) string {
	size := 256
	for {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := int(get(buf, C.size_t(size)))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return ""
		}
		if n < size {
			s := C.GoStringN(buf, C.int(n))
			C.free(unsafe.Pointer(buf))
			return s
		}
		C.free(unsafe.Pointer(buf))
		size = n + 1
	}
}

// Meta returns one metadata value as a string.
func (m *Model) Meta(key string) (string, bool) {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	found := false
	var v string
	m.use(func(c *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		found = true
		v = metaString(func(p *C.char, n C.size_t) C.int32_t {
			r := C.llama_model_meta_val_str(c, ckey, p, n)
			if r < 0 {
				found = false
			}
			return r
		})
		return nil
	})
	return v, found
}

// ContextLength is the context length the model was trained with.
func (m *Model) ContextLength() int {
	n := 0
	m.use(func(c *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		n = int(C.llama_model_n_ctx_train(c))
		return nil
	})
	return n
}

// Layers is the number of transformer blocks.
func (m *Model) Layers() int {
	n := 0
	m.use(func(c *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		n = int(C.llama_model_n_layer(c))
		return nil
	})
	return n
}

// VocabSize is the number of tokens in the vocabulary (0 after Close).
func (m *Model) VocabSize() int {
	n := 0
	m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		n = int(C.llama_vocab_n_tokens(v))
		return nil
	})
	return n
}

// vocabToken reads one special token of the vocabulary.
func (m *Model) vocabToken(get func(*C.struct_llama_vocab) C.llama_token) (Token, error) {
	t := Token(-1)
	err := m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		t = Token(get(v))
		return nil
	})
	return t, err
}

// BOS is the beginning-of-sequence token (-1 if none).
func (m *Model) BOS() (Token, error) {
	return m.vocabToken(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_bos(v) })
}

// EOS is the end-of-sequence token (-1 if none).
func (m *Model) EOS() (Token, error) {
	return m.vocabToken(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_eos(v) })
}

// EOT is the end-of-turn token (-1 if none).
func (m *Model) EOT() (Token, error) {
	return m.vocabToken(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_eot(v) })
}

// AddBOS reports whether the tokenizer adds BOS to new sequences.
func (m *Model) AddBOS() (bool, error) {
	add := false
	err := m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		add = bool(C.llama_vocab_get_add_bos(v))
		return nil
	})
	return add, err
}

// IsEOG reports whether t ends generation (EOS, EOT and similar tokens);
// false for a token outside the vocabulary and after Close.
func (m *Model) IsEOG(t Token) bool {
	eog := false
	m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		eog = validToken(v, t) && bool(C.llama_vocab_is_eog(v, C.llama_token(t)))
		return nil
	})
	return eog
}

func validToken(v *C.struct_llama_vocab, t Token) bool {
	return v != nil && t >= 0 && int(t) < int(C.llama_vocab_n_tokens(v))
}

// MaxTokenizeBytes is the longest text Tokenize accepts; longer texts get
// ErrTextTooLong at once. No context this library can create holds that many
// tokens of ordinary text, and the tokenizer's stack need grows with the
// length of a run (see tokenizeStack), so this bound is what makes every
// input safe. Callers that know their context size refuse far earlier (see
// Model.MaxTextBytes).
const MaxTokenizeBytes = 1 << 20

// tokenizeStackPerByte is the stack one byte of text may need in llama.cpp's
// std::regex pre-tokenizer (Qwen2's and most others' recurse once per
// character of a match). Measured: 100,000 'A's need 28-32 MiB, 400,000
// spaces 96-128 MiB, so about 320 bytes; 512 leaves margin.
const tokenizeStackPerByte = 512

// bigTokenizeBytes is the text length above which tokenizations run one at a
// time: a long run really touches its stack, so many of them at once (a
// server under attack) could otherwise hold gigabytes.
const bigTokenizeBytes = 64 << 10

// bigTokenize serialises tokenizations longer than bigTokenizeBytes.
var bigTokenize sync.Mutex

// tokenizeStack is the stack size of the thread that tokenizes text of n
// bytes: enough for a text that is one long run. It is reserved address
// space, not memory; ordinary text touches a few pages of it.
func tokenizeStack(n int) uintptr {
	const minStack = 8 << 20
	return uintptr(n)*tokenizeStackPerByte + minStack
}

// MaxTextBytes is the longest text that can possibly tokenize to at most
// tokens tokens, so that a caller with a context of that size can refuse a
// longer prompt before tokenizing it (a cheap check against hostile inputs).
// It relies on every token standing for at most as many bytes as its longest
// piece, which holds for the lossless tokenizers (BPE, SPM, RWKV); for the
// normalising ones (WPM, UGM: a run of spaces can become one token), and for
// vocabularies with tokens that absorb the whitespace beside them, it
// returns MaxTokenizeBytes.
func (m *Model) MaxTextBytes(tokens int) int {
	n := 0
	m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		n = m.maxTextBytes(v, tokens)
		return nil
	})
	return n
}

func (m *Model) maxTextBytes(vocab *C.struct_llama_vocab, tokens int) int {
	switch C.llama_vocab_type(vocab) {
	case C.LLAMA_VOCAB_TYPE_BPE, C.LLAMA_VOCAB_TYPE_SPM, C.LLAMA_VOCAB_TYPE_RWKV:
	default:
		return MaxTokenizeBytes
	}
	m.maxPieceOnce.Do(func() {
		buf := make([]byte, 256)
		for t := 0; t < int(C.llama_vocab_n_tokens(vocab)); t++ {
			// A token that strips the whitespace beside it stands for any
			// number of bytes: no bound then.
			if C.llama_vocab_get_attr(vocab, C.llama_token(t))&(C.LLAMA_TOKEN_ATTR_LSTRIP|C.LLAMA_TOKEN_ATTR_RSTRIP) != 0 {
				m.maxPiece = -1
				return
			}
			n := int(C.llama_token_to_piece(vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, true))
			if n < 0 {
				n = -n
			}
			m.maxPiece = max(m.maxPiece, n)
		}
		m.maxPiece = max(m.maxPiece, 1)
	})
	if m.maxPiece < 0 {
		return MaxTokenizeBytes
	}
	if tokens <= 0 {
		return 0
	}
	if tokens > MaxTokenizeBytes/m.maxPiece {
		return MaxTokenizeBytes
	}
	return tokens * m.maxPiece
}

// Tokenize converts text into tokens. addSpecial adds BOS/EOS as the model
// is configured to; parseSpecial turns texts such as "<|im_end|>" into their
// special tokens (wanted for rendered chat templates, unwanted for user data).
// Texts longer than MaxTokenizeBytes give ErrTextTooLong.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	var toks []Token
	err := m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		var err error
		toks, err = tokenize(v, text, addSpecial, parseSpecial)
		return err
	})
	return toks, err
}

func tokenize(vocab *C.struct_llama_vocab, text string, addSpecial, parseSpecial bool) ([]Token, error) {
	if len(text) > MaxTokenizeBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTextTooLong, len(text), MaxTokenizeBytes)
	}
	if len(text) > bigTokenizeBytes {
		bigTokenize.Lock()
		defer bigTokenize.Unlock()
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	eb := newErrBuf()
	defer eb.free()
	stack := C.size_t(tokenizeStack(len(text)))
	capacity := len(text) + 8
	for attempt := 0; attempt < 2; attempt++ {
		out := make([]Token, capacity)
		var n C.int32_t
		if C.cp_tokenize(vocab, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&out[0])), C.int32_t(capacity), C.bool(addSpecial), C.bool(parseSpecial), stack, &n, eb.p, errBufLen) != 0 {
			return nil, fmt.Errorf("tokenize: %s", eb)
		}
		if n >= 0 {
			return out[:n], nil
		}
		if n == C.INT32_MIN {
			return nil, fmt.Errorf("tokenize: result does not fit in int32")
		}
		capacity = int(-n)
	}
	return nil, fmt.Errorf("tokenize: buffer size mismatch")
}

// TokenPiece returns the bytes of one token (possibly a partial UTF-8
// sequence). special renders control tokens as their text.
func (m *Model) TokenPiece(t Token, special bool) ([]byte, error) {
	var piece []byte
	err := m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		if !validToken(v, t) {
			return fmt.Errorf("token %d is outside the vocabulary of %d tokens", t, int(C.llama_vocab_n_tokens(v)))
		}
		buf := make([]byte, 64)
		for {
			n := C.llama_token_to_piece(v, C.llama_token(t), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, C.bool(special))
			if n >= 0 {
				piece = buf[:n]
				return nil
			}
			buf = make([]byte, int(-n))
		}
	})
	return piece, err
}

// Detokenize converts tokens back into text. removeSpecial drops BOS/EOS the
// tokenizer added; unparseSpecial renders control tokens as text.
func (m *Model) Detokenize(tokens []Token, removeSpecial, unparseSpecial bool) (string, error) {
	var text string
	err := m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		if len(tokens) == 0 {
			return nil
		}
		for i, t := range tokens {
			if !validToken(v, t) {
				return fmt.Errorf("detokenize: token %d at position %d is outside the vocabulary of %d tokens", t, i, int(C.llama_vocab_n_tokens(v)))
			}
		}
		size := len(tokens)*8 + 16
		for {
			buf := make([]byte, size)
			n := C.llama_detokenize(v, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.int32_t(len(tokens)), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(size), C.bool(removeSpecial), C.bool(unparseSpecial))
			if n >= 0 {
				text = string(buf[:n])
				return nil
			}
			size = int(-n)
		}
	})
	return text, err
}

// ChatMessage is one turn for ApplyTemplate (message.Message).
type ChatMessage = message.Message

// ApplyTemplate renders messages with the model's own chat template through
// llama.cpp's built-in template engine. addAssistant appends the header that
// opens the assistant's reply. Models whose template llama.cpp does not
// recognise get ErrUnsupportedTemplate.
func (m *Model) ApplyTemplate(msgs []ChatMessage, addAssistant bool) (string, error) {
	var tmpl string
	err := m.use(func(c *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		t := C.llama_model_chat_template(c, nil)
		if t == nil {
			return fmt.Errorf("%w: model %s has no tokenizer.chat_template", ErrUnsupportedTemplate, m.path)
		}
		tmpl = C.GoString(t) // a copy: the template may be rendered after Close
		return nil
	})
	if err != nil {
		return "", err
	}
	return applyTemplate(tmpl, msgs, addAssistant)
}

// ApplyTemplateString renders msgs with an explicit template, either a Jinja
// template text or the name of a llama.cpp built-in ("chatml", "llama3", ...).
func ApplyTemplateString(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	return applyTemplate(tmpl, msgs, addAssistant)
}

func applyTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	if len(msgs) == 0 {
		return "", fmt.Errorf("apply chat template: no messages")
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))
	cmsgs := (*C.struct_llama_chat_message)(C.calloc(C.size_t(len(msgs)), C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))))
	defer C.free(unsafe.Pointer(cmsgs))
	view := unsafe.Slice(cmsgs, len(msgs))
	total := 0
	for i, msg := range msgs {
		view[i].role = C.CString(msg.Role)
		view[i].content = C.CString(msg.Content)
		total += len(msg.Role) + len(msg.Content)
	}
	defer func() {
		for i := range view {
			C.free(unsafe.Pointer(view[i].role))
			C.free(unsafe.Pointer(view[i].content))
		}
	}()
	size := 2*total + 256
	for attempt := 0; attempt < 2; attempt++ {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := int(C.cp_chat_template(ctmpl, cmsgs, C.size_t(len(msgs)), C.bool(addAssistant), buf, C.int32_t(size)))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return "", fmt.Errorf("%w (template starts %s)", ErrUnsupportedTemplate, strconv.Quote(truncate(tmpl, 60)))
		}
		if n <= size {
			s := C.GoStringN(buf, C.int(n))
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		size = n + 1
	}
	return "", fmt.Errorf("apply chat template: size mismatch")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// describeSize replaces the "?B" that llama_model_desc prints for a model
// size it has no name for (any model that is not a known release, such as
// our test models) with the size computed from the parameter count.
func describeSize(desc string, params uint64) string {
	if !strings.Contains(desc, "?B") {
		return desc
	}
	var size string
	switch {
	case params >= 1e9:
		size = strconv.FormatFloat(float64(params)/1e9, 'f', 1, 64) + "B"
	case params >= 1e6:
		size = strconv.FormatFloat(float64(params)/1e6, 'f', 1, 64) + "M"
	default:
		size = strconv.FormatFloat(float64(params)/1e3, 'f', 1, 64) + "K"
	}
	return strings.Replace(desc, "?B", size, 1)
}
