package version

import (
	"strings"
	"testing"
)

// TestStampedVersion checks that the version and commit the Makefile
// stamps at link time (-ldflags -X) are what Codeplan and String report,
// and that an unstamped build still says something.
func TestStampedVersion(t *testing.T) {
	if Codeplan() == "" {
		t.Fatal("unstamped build: empty version")
	}
	saved, savedCommit := Version, Commit
	defer func() { Version, Commit = saved, savedCommit }()
	Version, Commit = "v1.2-3-gabcdef1-dirty", "abcdef123456+dirty"
	if got := Codeplan(); got != "v1.2-3-gabcdef1-dirty (abcdef123456+dirty)" {
		t.Errorf("Codeplan() = %q", got)
	}
	if s := String(); !strings.HasPrefix(s, "v1.2-3-gabcdef1-dirty (abcdef123456+dirty), llama.cpp "+LlamaCppCommit) {
		t.Errorf("String() = %q", s)
	}
	Commit = ""
	if got := Codeplan(); got != "v1.2-3-gabcdef1-dirty" {
		t.Errorf("without a commit: %q", got)
	}
}
