package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfileWritten: --cpuprofile leaves a complete profile (gzipped, as
// go tool pprof reads it) at FILE when the command ends, and no temporary
// file beside it.
func TestCPUProfileWritten(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cpu.pprof")
	code, _, stderr := runCLI(t, "--cpuprofile", p, "model", "tiny", "--print-path")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("--cpuprofile wrote %d bytes that are not a gzipped profile", len(b))
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("files beside the profile: %v", names)
	}
}
