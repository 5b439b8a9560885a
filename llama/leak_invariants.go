//go:build invariants

package llama

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// leaked holds the objects that the garbage collector found still open.
var leaked struct {
	mu   sync.Mutex
	list []string
}

// trackLeak, in builds with the invariants tag, gives p a finalizer that
// records it when it is collected while open(p) still holds: an object
// (Context, Sampler, Batch) whose C memory was never freed. Test mains
// fail the run when Leaks is not empty (see llama/testmodel.Main).
func trackLeak[T any](p *T, what string, open func(*T) bool) {
	where := creator()
	runtime.SetFinalizer(p, func(p *T) {
		if open(p) {
			leaked.mu.Lock()
			leaked.list = append(leaked.list, fmt.Sprintf("%s created at %s was never closed", what, where))
			leaked.mu.Unlock()
		}
	})
}

// creator is the first caller outside package llama: the code that made
// the object. Frames are told apart by file, since inlining can give a
// closure of this package the name of its caller.
func creator() string {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Dir(self)
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		inLlama := filepath.Dir(f.File) == dir && !strings.HasSuffix(f.File, "_test.go")
		if !inLlama || !more {
			return fmt.Sprintf("%s:%d", f.File, f.Line)
		}
	}
}

// Leaks returns the objects found collected without Close so far, and
// forgets them.
func Leaks() []string {
	leaked.mu.Lock()
	defer leaked.mu.Unlock()
	out := leaked.list
	leaked.list = nil
	return out
}
