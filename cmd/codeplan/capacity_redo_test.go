package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// capacityPrompts writes short and long prompts (ids a, b, c...): at --ctx
// 512 with one sequence the long ones do not fit, at --ctx 4096 they do.
func capacityPrompts(t *testing.T, dir string, long ...bool) string {
	t.Helper()
	var b strings.Builder
	for i, l := range long {
		p := "What is " + strconv.Itoa(i) + " plus 2?"
		if l {
			p = strings.Repeat("word ", 150) + p
		}
		row, _ := json.Marshal(map[string]string{"id": string(rune('a' + i)), "prompt": p})
		b.Write(append(row, '\n'))
	}
	in := filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

func generateCtxArgs(in, out, ctx string) []string {
	return []string{"-q", "generate", "tiny", "--input", in, "--output", out, "--ctx", ctx, "--parallel", "1",
		"--threads", "1", "--max-tokens", "6", "--max-plan-tokens", "6"}
}

// jsonlRows reads a JSONL file's rows in order.
func jsonlRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// capacityErrors returns the ids of the rows written with an error, and
// fails the test if an id appears twice.
func capacityErrors(t *testing.T, path string, ids int) []string {
	t.Helper()
	seen := map[string]bool{}
	var errs []string
	for _, r := range jsonlRows(t, path) {
		id := r["id"].(string)
		if seen[id] {
			t.Errorf("%s: id %s appears twice", path, id)
		}
		seen[id] = true
		if r["error"] != nil {
			errs = append(errs, id)
		}
	}
	if len(seen) != ids {
		t.Errorf("%s: %d ids, want %d", path, len(seen), ids)
	}
	return errs
}

// TestGenerateRedoesCapacityRejectsWhenCtxIsRaised: prompts too long for
// --ctx 512 are written with an error and seq_ctx 512; a rerun with --ctx
// 4096 redoes exactly those, replacing their rows (each id once); a rerun
// at the same or a smaller --ctx redoes nothing.
func TestGenerateRedoesCapacityRejectsWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	in := capacityPrompts(t, dir, false, true, false, true)
	out := filepath.Join(dir, "answers.jsonl")
	run := func(ctx string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, generateCtxArgs(in, out, ctx)...)
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
		return stdout
	}
	first := run("512")
	if errs := capacityErrors(t, out, 4); strings.Join(errs, ",") != "b,d" || !strings.Contains(first, "rows processed    4") {
		t.Fatalf("--ctx 512: rows with an error %v, want b,d:\n%s", errs, first)
	}
	for _, r := range jsonlRows(t, out) {
		if r["error"] != nil && (r["seq_ctx"] != float64(512) || !strings.Contains(r["error"].(string), "prompt does not fit")) {
			t.Errorf("error row %v", r)
		}
	}
	if again := run("512"); !strings.Contains(again, "rows processed    0") {
		t.Fatalf("a rerun at the same --ctx should redo nothing:\n%s", again)
	}
	second := run("4096")
	if !strings.Contains(second, "rows processed    2") || !strings.Contains(second, "already done 2") {
		t.Fatalf("--ctx 4096 should redo exactly the 2 rows rejected for capacity:\n%s", second)
	}
	if errs := capacityErrors(t, out, 4); len(errs) != 0 {
		t.Errorf("after --ctx 4096, rows still with an error: %v", errs)
	}
	for _, r := range jsonlRows(t, out) {
		if r["answer_tokens"] == float64(0) || r["seq_ctx"] != nil {
			t.Errorf("row %v", r)
		}
	}
	if third := run("4096"); !strings.Contains(third, "rows processed    0") {
		t.Fatalf("a rerun at the same --ctx should redo nothing:\n%s", third)
	}
	if smaller := run("512"); !strings.Contains(smaller, "rows processed    0") {
		t.Fatalf("a rerun at a smaller --ctx should redo nothing:\n%s", smaller)
	}
}

// TestEvalRedoesCapacityRejectsWhenCtxIsRaised is the same for eval: an
// item too long for --ctx 768 is recorded as wrong with seq_ctx in both
// modes; --ctx 4096 redoes exactly those two pairs, whose rows replace
// the old ones, and the report counts no item that could not run. (At
// --ctx 512 the short items' codeplan answers would not fit after their
// plans either: context_full, see TestEvalRedoesContextFullWhenCtxIsRaised.)
func TestEvalRedoesCapacityRejectsWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	bench := filepath.Join(dir, "bench.jsonl")
	long := strings.Repeat("apples ", 150)
	os.WriteFile(bench, []byte(`{"id":"q1","question":"What is 2+3?","answer":"#### 5"}
{"id":"q2","question":"`+long+`How many?","answer":"#### 7"}
{"id":"q3","question":"What is 4+4?","answer":"#### 8"}
`), 0o644)
	out := filepath.Join(dir, "ev")
	results := filepath.Join(out, "results.jsonl")
	run := func(ctx string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, "-q", "eval", "tiny", "--bench", bench, "--out", out, "--modes", "direct,codeplan",
			"--ctx", ctx, "--parallel", "1", "--threads", "1", "--max-tokens", "6", "--max-plan-tokens", "6")
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
	}
	run("768")
	if errs := capacityErrors(t, results, 6); strings.Join(errs, ",") != "q2|direct,q2|codeplan" {
		t.Fatalf("--ctx 768: rows with an error %v, want both modes of q2", errs)
	}
	before, _ := os.ReadFile(results)
	run("768")
	if after, _ := os.ReadFile(results); string(after) != string(before) {
		t.Fatalf("a rerun at the same --ctx changed the results:\n%s\n---\n%s", before, after)
	}
	run("4096")
	if errs := capacityErrors(t, results, 6); len(errs) != 0 {
		t.Fatalf("after --ctx 4096, rows still with an error: %v", errs)
	}
	rows := jsonlRows(t, results)
	// The 4 rows that ran are kept as they were, first; the 2 redone follow.
	for i, r := range rows {
		if redone := i >= 4; redone != (r["item_id"] == "q2") || r["prompt_tokens"].(float64) < 512 && redone {
			t.Errorf("row %d: %v", i, r)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "rows: 6 (3 items × 2 modes)\n") {
		t.Errorf("report.md after the redo:\n%s", md)
	}
	before, _ = os.ReadFile(results)
	run("4096")
	if after, _ := os.ReadFile(results); string(after) != string(before) {
		t.Fatalf("a rerun at the same --ctx changed the results")
	}
}

// TestGenerateCapacityRedoSurvivesKill kills generate with SIGKILL in the
// middle of a redo (--ctx 4096 after --ctx 512, from inside, once the first
// redone row is written): the file then holds every id at most once (the
// old rows of the redo are gone, one new row is there), and a rerun ends
// with every id exactly once and no row left with an error.
func TestGenerateCapacityRedoSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	in := capacityPrompts(t, dir, true, false, true, true, false)
	out := filepath.Join(dir, "answers.jsonl")
	if code, stdout, stderr := runCLI(t, generateCtxArgs(in, out, "512")...); code != 0 {
		t.Fatalf("--ctx 512: exit %d\n%s%s", code, stdout, stderr)
	}
	if errs := capacityErrors(t, out, 5); len(errs) != 3 {
		t.Fatalf("--ctx 512: rows with an error %v, want 3", errs)
	}
	err := runSignalled(t, 1, "KILL", generateCtxArgs(in, out, "4096")...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed: %v", err)
	}
	// Killed after one redone row: the 2 short rows and that one, once each.
	if errs := capacityErrors(t, out, 3); len(errs) != 0 {
		t.Fatalf("after the kill, rows with an error: %v", errs)
	}
	code, stdout, stderr := runCLI(t, generateCtxArgs(in, out, "4096")...)
	if code != 0 || !strings.Contains(stdout, "rows processed    2") {
		t.Fatalf("rerun: exit %d, want the 2 rows left redone\n%s%s", code, stdout, stderr)
	}
	if errs := capacityErrors(t, out, 5); len(errs) != 0 {
		t.Errorf("after the rerun, rows with an error: %v", errs)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".answers.jsonl.tmp-*")); len(matches) != 0 {
		t.Errorf("temporaries left: %v", matches)
	}
}
