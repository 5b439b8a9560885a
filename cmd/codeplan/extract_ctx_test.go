package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExtractRedoesCapacityRejectsWhenCtxIsRaised is issue 24's resume
// bug: rows rejected as prompt_too_long at --ctx 512 were counted as done,
// so the rerun that the message asks for (--ctx 4096) did nothing. The
// reject now records the sequence size, and a run whose sequences hold more
// redoes those rows (and only those).
func TestExtractRedoesCapacityRejectsWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "short.txt")
	os.WriteFile(tmpl, []byte("Write the plan.\n{{prompt}}\n{{response}}\n"), 0o644)
	long := strings.Repeat("Add the next number to the running total and say the total. ", 25)
	var rows []string
	for i, r := range [][2]string{{"What is 2 plus 3?", "2 plus 3 is 5."}, {"Sum the list.", long}, {"What is 4 times 2?", "It is 8."}, {"Count up.", long}} {
		b, _ := json.Marshal(map[string]string{"id": string(rune('a' + i)), "prompt": r[0], "response": r[1]})
		rows = append(rows, string(b))
	}
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "plans.jsonl")
	run := func(ctx string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, "-q", "extract", "tiny", "--input", in, "--output", out, "--template", tmpl,
			"--parallel", "1", "--prefix-cache=false", "--threads", "1", "--max-plan-tokens", "16", "--predict=false", "--ctx", ctx)
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
		return stdout
	}
	first := run("512")
	if !strings.Contains(first, "rows processed    4") || !regexpMatch(first, `prompt_too_long\s+2\s`) {
		t.Fatalf("--ctx 512 should reject the 2 long rows as prompt_too_long:\n%s", first)
	}
	for _, id := range []string{"b", "d"} {
		if r := findRow(t, rejectsPath(out), id); r["reason"] != "prompt_too_long" || r["seq_ctx"] != float64(512) {
			t.Errorf("reject of %s: %v", id, r)
		}
	}
	second := run("4096")
	if !strings.Contains(second, "rows processed    2") || !strings.Contains(second, "already done 2") || regexpMatch(second, `prompt_too_long\s+\d`) {
		t.Fatalf("--ctx 4096 should redo exactly the 2 capacity rejects:\n%s", second)
	}
	if third := run("4096"); !strings.Contains(third, "rows processed    0") {
		t.Fatalf("a rerun at the same --ctx should redo nothing:\n%s", third)
	}
	if again := run("512"); !strings.Contains(again, "rows processed    0") {
		t.Fatalf("a rerun at a smaller --ctx should redo nothing:\n%s", again)
	}
}

// findRow returns the last row with id in a JSONL file.
func findRow(t *testing.T, path, id string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["id"] == id {
			found = r
		}
	}
	return found
}

func regexpMatch(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }
