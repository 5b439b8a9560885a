package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/llama.cpp/include -I${SRCDIR}/../third_party/ggml/include
#cgo CXXFLAGS: -I${SRCDIR}/../third_party/llama.cpp/src
#cgo CXXFLAGS: -std=c++17
#include <stdlib.h>
#include "shim.h"
#include "repack.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/codeplan-dev/codeplan/llama/lm"

	// The C/C++ of llama.cpp and ggml: these packages' cgo compiles and links it.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

var initOnce sync.Once

// Init initialises llama.cpp's backends once per process. Every entry point
// calls it, so calling it yourself is optional.
func Init() {
	initOnce.Do(func() {
		C.cp_install_log()
		C.llama_backend_init()
		// Before any model load: the CPU backend copies its list of extra
		// buffer types on first use. Models use it only with
		// ModelOptions.Repack (see there).
		C.cp_enable_cpu_repack()
	})
}

// SystemInfo reports the CPU features and backends llama.cpp was built with
// (for example "AVX2 = 1"), which tells whether optimisation flags took effect.
func SystemInfo() string {
	Init()
	return strings.TrimSpace(C.GoString(C.llama_print_system_info()))
}

// LoadBackends loads GPU backends (shared libraries such as libggml-cuda.so
// built by `make cuda`) from dir. After it, models can offload layers.
func LoadBackends(dir string) error {
	Init()
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("load backends: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("load backends: %s is not a directory", dir)
	}
	before := len(Devices())
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	C.ggml_backend_load_all_from_path(cdir)
	if len(Devices()) == before {
		return fmt.Errorf("load backends: no new backend found in %s", dir)
	}
	return nil
}

// Device describes one compute device ggml can use.
type Device struct {
	Name        string
	Description string
	Kind        string // "cpu", "gpu", "igpu" or "accel"
	FreeBytes   uint64
	TotalBytes  uint64
}

// Devices lists the compute devices currently registered with ggml.
func Devices() []Device {
	Init()
	n := int(C.ggml_backend_dev_count())
	out := make([]Device, 0, n)
	for i := 0; i < n; i++ {
		d := C.ggml_backend_dev_get(C.size_t(i))
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		kind := "cpu"
		switch C.ggml_backend_dev_type(d) {
		case C.GGML_BACKEND_DEVICE_TYPE_GPU:
			kind = "gpu"
		case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
			kind = "igpu"
		case C.GGML_BACKEND_DEVICE_TYPE_ACCEL:
			kind = "accel"
		}
		out = append(out, Device{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			Kind:        kind,
			FreeBytes:   uint64(free),
			TotalBytes:  uint64(total),
		})
	}
	return out
}

// HasGPU reports whether a GPU device is registered (after LoadBackends).
func HasGPU() bool {
	for _, d := range Devices() {
		if d.Kind == "gpu" || d.Kind == "igpu" {
			return true
		}
	}
	return false
}

// errBuf is a C buffer that shim functions fill with an error message.
type errBuf struct{ p *C.char }

const errBufLen = 1024

func newErrBuf() errBuf {
	p := (*C.char)(C.calloc(errBufLen, 1))
	return errBuf{p}
}

func (e errBuf) String() string { return strings.TrimSpace(C.GoString(e.p)) }
func (e errBuf) free()          { C.free(unsafe.Pointer(e.p)) }

// Sentinel errors; test with errors.Is.
var (
	// ErrNotGGUF: the file does not start with the GGUF magic.
	ErrNotGGUF = errors.New("not a GGUF file")
	// ErrModelLoad: llama.cpp rejected the model file.
	ErrModelLoad = errors.New("cannot load model")
	// ErrContextFull: the KV cache has no room for the batch (context overflow).
	ErrContextFull = errors.New("context is full")
	// ErrInvalidBatch: the batch refers to unknown tokens, sequences or positions.
	ErrInvalidBatch = errors.New("invalid batch")
	// ErrDecode: llama_decode failed for another reason.
	ErrDecode = errors.New("decode failed")
	// ErrUnsupportedTemplate: llama.cpp does not know the model's chat template.
	ErrUnsupportedTemplate = errors.New("unsupported chat template")
	// ErrAdapter: the LoRA adapter cannot be loaded or does not fit the model.
	ErrAdapter = errors.New("cannot use LoRA adapter")
	// ErrGrammar: the GBNF grammar does not parse.
	ErrGrammar = errors.New("invalid grammar")
	// ErrClosed: the object was already closed.
	ErrClosed = errors.New("use of closed object")
	// ErrTextTooLong: the text is longer than Tokenize accepts (MaxTokenizeBytes).
	ErrTextTooLong = lm.ErrTextTooLong
	// ErrKVCache: the KV cache types and flash attention setting do not
	// work together on this model.
	ErrKVCache = errors.New("unsupported KV cache setting")
	// ErrInUse: a Model still has open contexts or adapters.
	ErrInUse = errors.New("still in use")
)
