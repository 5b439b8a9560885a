package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFinetuneTaskExtract trains a LoRA extractor on the tiny model with a
// short template file, checks that the adapter says it is an extractor,
// runs it with extract --reference-field, and checks the refusals of
// --task extract with a plan mode and of --template without --task extract.
func TestFinetuneTaskExtract(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	dir := t.TempDir()
	rows := filepath.Join(dir, "rows.jsonl")
	var b strings.Builder
	for i := 0; i < 6; i++ {
		r := map[string]string{"id": string(rune('a' + i)), "prompt": "Add 2 and " + string(rune('1'+i)) + ".",
			"response": "The answer is " + string(rune('3'+i)) + ".", "plan": "def solve():\n    return add(2, x)"}
		line, _ := json.Marshal(r)
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(rows, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(dir, "t.txt")
	if err := os.WriteFile(tmpl, []byte("P: {{prompt}}\nR: {{response}}\nPlan it."), 0o644); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "x.gguf")
	code, _, stderr := runCLI(t, "finetune", "tiny", "--task", "extract", "--template", tmpl, "--data", rows,
		"--out", adapter, "--epochs", "1", "--lr", "1e-3", "--val-split", "0", "--threads", "1")
	if code != 0 {
		t.Fatalf("finetune --task extract: exit %d\n%s", code, stderr)
	}
	code, out, stderr := runCLI(t, "info", adapter, "--json")
	if code != 0 || !strings.Contains(out, `"task": "extract"`) || !strings.Contains(out, `"mode": "direct"`) {
		t.Errorf("info of the extractor: exit %d, %s %s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "extract", "tiny", "--lora", adapter, "--template", tmpl, "--input", rows,
		"--output", filepath.Join(dir, "plans.jsonl"), "--reference-field", "plan", "--max-plan-tokens", "8",
		"--parallel", "2", "--threads", "1")
	if code != 0 || !strings.Contains(out, "of 6 rows") || !strings.Contains(out, "--reference-field plan") {
		t.Errorf("extract --reference-field: exit %d\n%s\n%s", code, out, stderr)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--task", "extract", "--mode", "codeplan"}, "--task extract trains in direct mode"},
		{[]string{"--template", "paper"}, "--template applies to --task extract"},
		{[]string{"--task", "summarise"}, "want answer or extract"},
	} {
		args := append([]string{"finetune", "tiny", "--data", rows, "--out", filepath.Join(dir, "y.gguf")}, c.args...)
		code, _, stderr := runCLI(t, args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "goroutine ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
