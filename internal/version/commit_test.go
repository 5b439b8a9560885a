package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLlamaCppCommit checks LlamaCppCommit against the commit that the pinned
// ollama module says it vendors.
func TestLlamaCppCommit(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Skipf("go list cannot locate the ollama module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "llama", "build-info.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	want := `LLAMA_COMMIT = "` + LlamaCppCommit + `"`
	if !strings.Contains(string(src), want) {
		t.Fatalf("build-info.cpp does not record %s:\n%s", want, src)
	}
}
