package llama

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// cp_probe_library opens and closes a shared library and returns dlerror()'s
// text on failure (NULL on success).
static const char * cp_probe_library(const char * path) {
	void * h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		return dlerror();
	}
	dlclose(h);
	return NULL;
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// ProbeLibrary reports why the shared library at path cannot be loaded (the
// dynamic loader's message, which names a missing dependency such as
// libcudart.so.12), or nil when it loads. It explains a GPU backend that
// ggml skipped silently.
func ProbeLibrary(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if msg := C.cp_probe_library(cpath); msg != nil {
		return errors.New(C.GoString(msg))
	}
	return nil
}
