// Package version describes this build of codeplan, for --version and for
// the metadata that reports and result files record.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are stamped at link time by the Makefile
// (-ldflags "-X ...version.Version=... -X ...version.Commit=..."): `git
// describe --tags --always --dirty` and the commit with "+dirty" when the
// tree had uncommitted changes. A plain `go build` leaves them empty, and
// Codeplan falls back to what the Go build info knows.
var (
	Version string
	Commit  string
)

// Codeplan is codeplan's version and commit, e.g. "v0.3-12-g1a2b3c4-dirty
// (1a2b3c4d5e6f+dirty)": the stamped Version and Commit, else the module
// version and VCS revision from the Go build info ("(devel)" when
// unknown).
func Codeplan() string {
	if Version != "" {
		if Commit != "" {
			return Version + " (" + Commit + ")"
		}
		return Version
	}
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

// LlamaCppCommit is the llama.cpp commit that the binding (package llama)
// compiles: the one vendored by the pinned module github.com/ollama/ollama
// (see go.mod). The module records it in llama/build-info.cpp, which lives
// in a package we do not link, so it is repeated here (in this cgo-free
// package, so that reports can name it without linking llama.cpp);
// TestLlamaCppCommit keeps the two equal when the module is bumped.
const LlamaCppCommit = "ec98e2002"

// LlamaCpp is the llama.cpp commit this binary is built on.
func LlamaCpp() string { return LlamaCppCommit }

// String is the full version line: codeplan's version, the llama.cpp commit
// it compiles and the Go release that built it.
func String() string {
	return fmt.Sprintf("%s, llama.cpp %s, %s", Codeplan(), LlamaCppCommit, runtime.Version())
}
