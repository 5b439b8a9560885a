package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
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

// TestFinetuneFullCLI trains every weight of a model from `model init`
// through the command; the written model generates; options that only
// apply to LoRA, and non-F32 models, are usage errors.
func TestFinetuneFullCLI(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rows := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(rows, data, 0o644)
	init := filepath.Join(dir, "init.gguf")
	if code := run([]string{"codeplan", "-q", "model", "init", "--out", init, "--layers", "2", "--embd", "64", "--heads", "4", "--ff", "128", "--ctx", "512"}); code != 0 {
		t.Fatalf("model init: exit %d", code)
	}
	out := filepath.Join(dir, "trained.gguf")
	args := []string{"codeplan", "-q", "finetune", init, "--full", "--data", rows, "--out", out, "--epochs", "2",
		"--lr", "1e-3", "--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0", "--weight-decay", "0.1"}
	if code := run(args); code != 0 {
		t.Fatalf("finetune --full: exit %d", code)
	}
	for _, p := range []string{out, strings.TrimSuffix(out, ".gguf") + ".log.csv", strings.TrimSuffix(out, ".gguf") + ".loss.png"} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("missing output %s: %v", filepath.Base(p), err)
		}
	}
	prompts := filepath.Join(dir, "p.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt":"What is 2+2?"}`+"\n"), 0o644)
	if code := run([]string{"codeplan", "-q", "generate", out, "--input", prompts, "--output", filepath.Join(dir, "a.jsonl"),
		"--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}); code != 0 {
		t.Errorf("generate with the trained model: exit %d", code)
	}
	for _, extra := range [][]string{{"--lora-rank", "4"}, {"--merge", filepath.Join(dir, "m.gguf")}, {"--lora"}} {
		bad := append(append([]string(nil), args...), extra...)
		bad[8] = filepath.Join(dir, "z.gguf")
		if code := run(bad); code != exitUsage {
			t.Errorf("--full with %v: exit %d, want %d", extra, code, exitUsage)
		}
	}
	// a quantized model cannot be trained fully: refused before loading
	q8 := filepath.Join(dir, "q8.gguf")
	if err := tiny.WriteAs(q8, tiny.DefaultConfig(), gguf.TensorQ8_0); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"codeplan", "-q", "finetune", q8, "--full", "--data", rows, "--out", filepath.Join(dir, "t.gguf")}); code != exitUsage {
		t.Errorf("--full on a Q8_0 model: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"codeplan", "-q", "finetune", init, "--lora=false", "--data", rows, "--out", filepath.Join(dir, "n.gguf")}); code != exitUsage {
		t.Errorf("--lora=false without --full: exit %d", code)
	}
}
