package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
)

func TestModelTinyAndInfo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "tiny.gguf")
	if code := run([]string{"codeplan", "-q", "model", "tiny", "--out", out, "--print-path"}); code != 0 {
		t.Fatalf("model tiny --out: exit %d", code)
	}
	m, err := llama.LoadModel(out, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatalf("the written model does not load: %v", err)
	}
	m.Close()
	if code := run([]string{"codeplan", "-q", "info", out, "--all", "--system"}); code != 0 {
		t.Errorf("info: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "info", "--json", "--model", out}); code != 0 {
		t.Errorf("info --json: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "model", "tiny", "--size", "huge"}); code != exitUsage {
		t.Errorf("bad size: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGUF but not really"), 0o644)
	if code := run([]string{"codeplan", "-q", "info", bad}); code != exitUsage {
		t.Errorf("corrupt model: exit %d, want %d", code, exitUsage)
	}
}

func TestBenchCommand(t *testing.T) {
	if code := run([]string{"codeplan", "-q", "bench", "tiny", "--parallels", "1,2", "--pp", "32", "--tg", "8", "--threads", "1", "--json"}); code != 0 {
		t.Errorf("bench: exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "bench", "tiny", "--parallels", "0"}); code != exitUsage {
		t.Errorf("bad --parallels: exit %d", code)
	}
}
