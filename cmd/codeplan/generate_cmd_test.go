package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func TestGenerateModesAndResume(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(in, []byte(`{"id":"p1","prompt":"What is 2+2?"}
{"question":"Name three colours."}
{"messages":[{"role":"user","content":"Plan a picnic."}]}
`), 0o644)
	for _, mode := range []string{"codeplan", "nlplan", "direct"} {
		out := filepath.Join(dir, mode+".jsonl")
		args := []string{"codeplan", "-q", "generate", "tiny", "--input", in, "--output", out, "--mode", mode,
			"--max-plan-tokens", "12", "--max-tokens", "10", "--threads", "1", "--parallel", "2"}
		if code := run(args); code != 0 {
			t.Fatalf("%s: exit %d", mode, code)
		}
		// A second run resumes: nothing is added.
		if code := run(args); code != 0 {
			t.Fatalf("%s rerun: exit %d", mode, code)
		}
		data, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: %d rows, want 3", mode, len(lines))
		}
		for _, l := range lines {
			var row map[string]any
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatal(err)
			}
			if row["mode"] != mode || row["answer_tokens"].(float64) == 0 || row["prompt"] == "" {
				t.Errorf("%s: row %v", mode, row)
			}
			_, hasPlan := row["plan"]
			if hasPlan != (mode != "direct") {
				t.Errorf("%s: plan present = %v in %v", mode, hasPlan, row)
			}
		}
	}
}

func TestGenerateWithLoRAAndErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(in, []byte(`{"prompt":"hello"}`+"\n"), 0o644)
	lora := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 4, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	base := []string{"codeplan", "-q", "generate", "tiny", "--input", in, "--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}
	if code := run(append(base, "--output", filepath.Join(dir, "l.jsonl"), "--lora", lora, "--lora-scale", "0.5")); code != 0 {
		t.Fatalf("with --lora: exit %d", code)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "l.jsonl"))
	if !strings.Contains(string(data), `"lora":"a.gguf"`) {
		t.Errorf("output does not name the adapter: %s", data)
	}
	wrong := filepath.Join(dir, "wrong.gguf")
	bigger := tiny.DefaultConfig()
	bigger.Embedding *= 2
	tiny.WriteLoRA(wrong, bigger, tiny.LoRAOptions{Rank: 2, Alpha: 4})
	if code := run(append(base, "--output", filepath.Join(dir, "w.jsonl"), "--lora", wrong)); code != exitUsage {
		t.Errorf("adapter for another base: exit %d, want %d", code, exitUsage)
	}
	if code := run(append(base, "--output", filepath.Join(dir, "m.jsonl"), "--mode", "poem")); code != exitUsage {
		t.Errorf("bad mode: exit %d", code)
	}
}

// TestGenerateTooLongPromptHint checks that a prompt too long for a
// sequence is written with the library's error (which names no flags) and
// that the command itself says which flags help.
func TestGenerateTooLongPromptHint(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prompts.jsonl")
	long := strings.Repeat("word ", 400)
	if err := os.WriteFile(in, []byte(`{"prompt":"hi"}`+"\n"+`{"prompt":"`+long+`"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	code, _, stderr := runCLI(t, "--log-format", "json", "generate", "tiny", "--input", in, "--output", out, "--ctx", "256",
		"--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1", "--format", "trained")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), `"error":"prompt does not fit in the context`) || strings.Contains(string(data), "--ctx") {
		t.Errorf("rows: %s", data)
	}
	if !strings.Contains(stderr, "raise --ctx or lower --parallel") || !strings.Contains(stderr, `"rows":1`) {
		t.Errorf("no hint naming the flags:\n%s", stderr)
	}
}
