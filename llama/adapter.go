package llama

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"sync"
	"unsafe"
)

// Adapter is a LoRA adapter loaded for one model.
type Adapter struct {
	mu       sync.Mutex
	c        *C.struct_llama_adapter_lora
	model    *Model
	path     string
	attached int
}

// LoadAdapter loads a GGUF LoRA adapter. It fails with ErrAdapter when the
// file is not a LoRA adapter, was made for another architecture, or its
// tensors do not match the model's shapes (an adapter for another base).
func (m *Model) LoadAdapter(path string) (*Adapter, error) {
	if err := m.use(func(*C.struct_llama_model, *C.struct_llama_vocab) error { return nil }); err != nil {
		return nil, err // closed: say so before looking at the file
	}
	if err := CheckGGUF(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAdapter, err)
	}
	if st, _ := os.Stat(path); st != nil && st.Size() < 64 {
		return nil, fmt.Errorf("%w %s: file is truncated (%d bytes)", ErrAdapter, path, st.Size())
	}
	// The same Go-side header check as for models: ggml's own parser would,
	// for example, try to read a string that claims to be 20 GB long.
	if err := checkHeader(path); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrAdapter, path, err)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	eb := newErrBuf()
	defer eb.free()
	var adapter *Adapter
	err := m.use(func(mc *C.struct_llama_model, _ *C.struct_llama_vocab) error {
		a := C.cp_load_adapter(mc, cpath, eb.p, errBufLen)
		if a == nil {
			return fmt.Errorf("%w %s: %s", ErrAdapter, path, eb)
		}
		m.retain(userAdapters)
		adapter = &Adapter{c: a, model: m, path: path}
		return nil
	})
	return adapter, err
}

// Path is the file the adapter was loaded from.
func (a *Adapter) Path() string { return a.path }

// Meta returns one of the adapter's GGUF metadata values as a string.
func (a *Adapter) Meta(key string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return "", false
	}
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	found := true
	v := metaString(func(p *C.char, n C.size_t) C.int32_t {
		r := C.llama_adapter_meta_val_str(a.c, ckey, p, n)
		if r < 0 {
			found = false
		}
		return r
	})
	return v, found
}

// Close frees the adapter. It fails with ErrInUse while a context uses it.
func (a *Adapter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return nil
	}
	if a.attached > 0 {
		return fmt.Errorf("close adapter %s: %w by %d contexts", a.path, ErrInUse, a.attached)
	}
	C.llama_adapter_lora_free(a.c)
	a.c = nil
	a.model.release(userAdapters)
	return nil
}

func (a *Adapter) detached() {
	a.mu.Lock()
	a.attached--
	a.mu.Unlock()
}

// SetAdapter applies a LoRA adapter with the given scale to every later
// Decode (calling it again changes the scale).
func (c *Context) SetAdapter(a *Adapter, scale float32) error {
	if c.c == nil {
		return fmt.Errorf("set adapter: context %w", ErrClosed)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return fmt.Errorf("set adapter %s: %w", a.path, ErrClosed)
	}
	if a.model != c.model {
		return fmt.Errorf("%w %s: loaded for model %s, context runs %s", ErrAdapter, a.path, a.model.path, c.model.path)
	}
	if err := CheckAdapterScale(float64(scale)); err != nil {
		return fmt.Errorf("%w %s: %w", ErrAdapter, a.path, err)
	}
	if C.llama_set_adapter_lora(c.c, a.c, C.float(scale)) != 0 {
		return fmt.Errorf("%w %s: llama.cpp refused it", ErrAdapter, a.path)
	}
	C.cp_forget_graph(c.c)
	if _, ok := c.adapters[a]; !ok {
		a.attached++
	}
	c.adapters[a] = scale
	return nil
}

// MaxAdapterScale bounds the LoRA scale: far past it the adapter's weights
// swamp the model's and the logits overflow to NaN, which aborts sampling.
const MaxAdapterScale = 100

// CheckAdapterScale reports whether scale is a usable LoRA scale: finite and
// within ±MaxAdapterScale.
func CheckAdapterScale(scale float64) error {
	if math.IsNaN(scale) || math.IsInf(scale, 0) || math.Abs(scale) > MaxAdapterScale {
		return fmt.Errorf("LoRA scale %g is not a number in [-%d, %d]", scale, MaxAdapterScale, MaxAdapterScale)
	}
	return nil
}

// RemoveAdapter stops applying a.
func (c *Context) RemoveAdapter(a *Adapter) error {
	if c.c == nil {
		return fmt.Errorf("remove adapter: context %w", ErrClosed)
	}
	if _, ok := c.adapters[a]; !ok {
		return fmt.Errorf("remove adapter %s: not attached", a.path)
	}
	C.llama_rm_adapter_lora(c.c, a.c)
	C.cp_forget_graph(c.c)
	delete(c.adapters, a)
	a.detached()
	return nil
}

// ClearAdapters stops applying every adapter.
func (c *Context) ClearAdapters() {
	if c.c == nil {
		return
	}
	C.llama_clear_adapter_lora(c.c)
	C.cp_forget_graph(c.c)
	for a := range c.adapters {
		a.detached()
	}
	c.adapters = map[*Adapter]float32{}
}
