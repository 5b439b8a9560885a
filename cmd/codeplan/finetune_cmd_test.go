package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFinetuneCLI trains a small adapter on the tiny model through the
// command, then uses it with generate; bad inputs get exit code 2.
func TestFinetuneCLI(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rows := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(rows, data, 0o644)
	out := filepath.Join(dir, "adapter.gguf")
	args := []string{"codeplan", "-q", "finetune", "tiny", "--data", rows, "--out", out, "--epochs", "1",
		"--lr", "1e-3", "--lora-rank", "4", "--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0"}
	if code := run(args); code != 0 {
		t.Fatalf("finetune exit %d", code)
	}
	for _, p := range []string{out, out[:len(out)-len(".gguf")] + ".log.csv", out[:len(out)-len(".gguf")] + ".loss.png"} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("missing output %s: %v", filepath.Base(p), err)
		}
	}
	csv, _ := os.ReadFile(out[:len(out)-len(".gguf")] + ".log.csv")
	if lines := strings.Count(string(csv), "\n"); lines < 2 {
		t.Errorf("step log has %d lines", lines)
	}
	prompts := filepath.Join(dir, "p.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt":"What is 2+2?"}`+"\n"), 0o644)
	if code := run([]string{"codeplan", "-q", "generate", "tiny", "--lora", out, "--input", prompts, "--output", filepath.Join(dir, "a.jsonl"),
		"--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}); code != 0 {
		t.Errorf("generate with the trained adapter: exit %d", code)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	if code := run(append(args[:4:4], "--data", empty, "--out", filepath.Join(dir, "x.gguf"))); code != exitUsage {
		t.Errorf("no usable rows: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"codeplan", "finetune", "tiny", "--out", filepath.Join(dir, "y.gguf")}); code != exitUsage {
		t.Errorf("missing --data: exit %d", code)
	}
}
