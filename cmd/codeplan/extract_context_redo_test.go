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

// contextFullRows writes rows with ids a, b, c...: a long one (about 400
// prompt tokens with the short template) for every true in long, else a
// short one. With --max-plan-tokens 400 the random tiny model, which never
// stops early, fills a 512-token sequence on the long rows (context_full)
// and reaches the plan limit on the short ones (not_terminated); the
// template file is returned too.
func contextFullRows(t *testing.T, dir string, long ...bool) (in, tmpl string) {
	t.Helper()
	tmpl = filepath.Join(dir, "short.txt")
	if err := os.WriteFile(tmpl, []byte("Write the plan.\n{{prompt}}\n{{response}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, l := range long {
		p, r := "What is "+strconv.Itoa(i)+" plus 2?", "It is "+strconv.Itoa(i+2)+"."
		if l {
			p, r = "Sum the list.", strings.Repeat("Add the next number to the running total and say the total. ", 6)
		}
		row, _ := json.Marshal(map[string]string{"id": string(rune('a' + i)), "prompt": p, "response": r})
		b.Write(append(row, '\n'))
	}
	in = filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return in, tmpl
}

func contextFullArgs(in, tmpl, out, ctx string) []string {
	return []string{"-q", "extract", "tiny", "--input", in, "--output", out, "--template", tmpl, "--parallel", "1",
		"--prefix-cache=false", "--threads", "1", "--max-plan-tokens", "400", "--predict=false", "--ctx", ctx,
		"--summary", out + ".summary.json"}
}

// extractRejects reads the rejects of out by id, and fails the test when an
// id is in the output and rejects files together more than once, or when
// they do not hold ids ids in all.
func extractRejects(t *testing.T, out string, ids int) map[string]map[string]any {
	t.Helper()
	seen := map[string]int{}
	for _, id := range readIDs(t, out, rejectsPath(out)) {
		if seen[id]++; seen[id] > 1 {
			t.Errorf("id %s is in the output and rejects %d times", id, seen[id])
		}
	}
	if len(seen) != ids {
		t.Errorf("%d ids in the output and rejects, want %d", len(seen), ids)
	}
	rej := map[string]map[string]any{}
	if _, err := os.Stat(rejectsPath(out)); err == nil {
		for _, r := range jsonlRows(t, rejectsPath(out)) {
			rej[r["id"].(string)] = r
		}
	}
	return rej
}

// contextFullFit reads context_full_fit_ctx from the run's --summary.
func contextFullFit(t *testing.T, out string) int {
	t.Helper()
	var sum struct {
		Fit int `json:"context_full_fit_ctx"`
	}
	b, err := os.ReadFile(out + ".summary.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	return sum.Fit
}

// TestExtractRedoesContextFullWhenCtxIsRaised: rows rejected as
// context_full record the tokens a sequence held (seq_ctx) and are redone
// by a rerun whose sequences hold more, like prompt_too_long. Each id stays
// once across output and rejects; a rerun at the same or a smaller --ctx,
// or at one that llama.cpp pads to the same sequence size, redoes nothing;
// and the --ctx the summary advises is true: there the rows reach their
// plan limit.
func TestExtractRedoesContextFullWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	in, tmpl := contextFullRows(t, dir, false, true, false, true)
	out := filepath.Join(dir, "plans.jsonl")
	run := func(ctx string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, contextFullArgs(in, tmpl, out, ctx)...)
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
		return stdout
	}
	// want checks the rejects after a run: the long rows b and d with
	// reason and seq_ctx (nil: none), the short ones not_terminated.
	want := func(label, reason string, seqCtx any) {
		t.Helper()
		rej := extractRejects(t, out, 4)
		for id, r := range rej {
			long := id == "b" || id == "d"
			switch {
			case long && (r["reason"] != reason || r["seq_ctx"] != seqCtx):
				t.Errorf("%s: reject of %s: reason %v, seq_ctx %v; want %s, %v", label, id, r["reason"], r["seq_ctx"], reason, seqCtx)
			case !long && (r["reason"] != "not_terminated" || r["seq_ctx"] != nil || r["plan_tokens"] != float64(400)):
				t.Errorf("%s: reject of %s: %v", label, id, r)
			}
		}
		if len(rej) != 4 {
			t.Errorf("%s: %d rejects, want 4", label, len(rej))
		}
	}
	first := run("512")
	if !strings.Contains(first, "rows processed    4") || !regexpMatch(first, `context_full\s+2\s.*--ctx \d+ would fit them, and a rerun with it redoes them`) {
		t.Fatalf("--ctx 512 should reject the 2 long rows as context_full:\n%s", first)
	}
	want("--ctx 512", "context_full", float64(512))
	if again := run("512"); !strings.Contains(again, "rows processed    0") {
		t.Fatalf("a rerun at the same --ctx should redo nothing:\n%s", again)
	}
	// --ctx 640 is raised, but not enough: the 2 rows are redone and are
	// context_full again, in a sequence that llama.cpp padded to 768.
	raised := run("640")
	if !strings.Contains(raised, "rows processed    2") || !strings.Contains(raised, "already done 2") {
		t.Fatalf("--ctx 640 should redo exactly the 2 context_full rows:\n%s", raised)
	}
	want("--ctx 640", "context_full", float64(768))
	fit := contextFullFit(t, out)
	if fit <= 768 {
		t.Fatalf("advised --ctx %d", fit)
	}
	if padded := run("700"); !strings.Contains(padded, "rows processed    0") {
		t.Fatalf("--ctx 700 holds 768 tokens a sequence, as the last run did, and should redo nothing:\n%s", padded)
	}
	advised := run(strconv.Itoa(fit))
	if !strings.Contains(advised, "rows processed    2") || strings.Contains(advised, "context_full") {
		t.Fatalf("--ctx %d (advised) should redo the 2 rows, and none should be context_full:\n%s", fit, advised)
	}
	// The model behaves the same, so the rows now reach their plan limit.
	want("advised --ctx", "not_terminated", nil)
	for _, id := range []string{"b", "d"} {
		if r := findRow(t, rejectsPath(out), id); r["plan_tokens"] != float64(400) {
			t.Errorf("at the advised --ctx %d, %s has %v plan tokens, want 400", fit, id, r["plan_tokens"])
		}
	}
	for _, ctx := range []string{strconv.Itoa(fit), "4096", "512"} {
		if rerun := run(ctx); !strings.Contains(rerun, "rows processed    0") {
			t.Fatalf("--ctx %s after the redo should redo nothing:\n%s", ctx, rerun)
		}
	}
}

// TestExtractContextFullRedoSurvivesKill kills extract with SIGKILL in the
// middle of a context_full redo (from inside, once the first redone row is
// written): the files then hold every id at most once (the old rejects of
// the redo are gone, one new row is there), and a rerun ends with every id
// exactly once and no row left context_full.
func TestExtractContextFullRedoSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	in, tmpl := contextFullRows(t, dir, true, false, true, true, false)
	out := filepath.Join(dir, "plans.jsonl")
	if code, stdout, stderr := runCLI(t, contextFullArgs(in, tmpl, out, "512")...); code != 0 {
		t.Fatalf("--ctx 512: exit %d\n%s%s", code, stdout, stderr)
	}
	full := 0
	for _, r := range extractRejects(t, out, 5) {
		if r["reason"] == "context_full" {
			full++
		}
	}
	if full != 3 {
		t.Fatalf("--ctx 512: %d rows context_full, want 3", full)
	}
	fit := strconv.Itoa(contextFullFit(t, out))
	err := runSignalled(t, 1, "KILL", contextFullArgs(in, tmpl, out, fit)...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed: %v", err)
	}
	// Killed after one redone row: the 2 short rows and that one, once each.
	for id, r := range extractRejects(t, out, 3) {
		if r["reason"] != "not_terminated" {
			t.Errorf("after the kill, %s: %v", id, r)
		}
	}
	code, stdout, stderr := runCLI(t, contextFullArgs(in, tmpl, out, fit)...)
	if code != 0 || !strings.Contains(stdout, "rows processed    2") {
		t.Fatalf("rerun: exit %d, want the 2 rows left redone\n%s%s", code, stdout, stderr)
	}
	for id, r := range extractRejects(t, out, 5) {
		if r["reason"] != "not_terminated" || r["plan_tokens"] != float64(400) {
			t.Errorf("after the rerun, %s: %v", id, r)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".plans*.tmp-*")); len(matches) != 0 {
		t.Errorf("temporaries left: %v", matches)
	}
}
