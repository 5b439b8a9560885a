// Package version describes this build of codeplan, for --version and for
// the metadata that reports and result files record.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/codeplan-dev/codeplan/llama"
)

// Codeplan is codeplan's module version and VCS revision from the Go build
// info, e.g. "(devel) (1a2b3c4d5e6f+dirty)".
func Codeplan() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
	}
	if rev != "" {
		v += " (" + rev + ")"
	}
	return v
}

// LlamaCpp is the llama.cpp commit this binary is built on.
func LlamaCpp() string { return llama.LlamaCppCommit }

// String is the full version line: codeplan's version, the llama.cpp commit
// it compiles and the Go release that built it.
func String() string {
	return fmt.Sprintf("%s, llama.cpp %s, %s", Codeplan(), llama.LlamaCppCommit, runtime.Version())
}
