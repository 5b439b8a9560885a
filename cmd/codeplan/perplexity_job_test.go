package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// pplCorpus writes n texts with ids p000.. to a JSONL file.
func pplCorpus(t *testing.T, dir string, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"p%03d","text":%q}`+"\n", i, strings.Repeat(fmt.Sprintf("text %d goes on. ", i), 6))
	}
	p := filepath.Join(dir, "texts.jsonl")
	os.WriteFile(p, []byte(b.String()), 0o644)
	return p
}

func pplArgs(in, out string) []string {
	return []string{"-q", "perplexity", "tiny", "--input", in, "--output", out, "--threads", "1", "--parallel", "2"}
}

// perplexity runs on the same row loop as extract: killed with SIGKILL
// (or stopped with Ctrl-C) after 5 rows, a rerun scores exactly the rest,
// and its summary covers every row.
func TestPerplexityResumesAfterKillAndInterrupt(t *testing.T) {
	for _, sig := range []string{"KILL", "INT"} {
		t.Run(sig, func(t *testing.T) {
			dir := t.TempDir()
			const n = 24
			in := pplCorpus(t, dir, n)
			out := filepath.Join(dir, "ppl.jsonl")
			err := runSignalled(t, 5, sig, pplArgs(in, out)...)
			var ee *exec.ExitError
			if sig == "KILL" && (!errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL) {
				t.Fatalf("the run was not killed: %v", err)
			}
			first := len(readIDs(t, out))
			if first < 5 || first >= n {
				t.Fatalf("%d rows after the stop, want 5 to %d", first, n-1)
			}
			code, stdout, stderr := runCLI(t, pplArgs(in, out)...)
			if code != 0 {
				t.Fatalf("rerun: exit %d\n%s", code, stderr)
			}
			checkIDsOnce(t, n, out)
			if !strings.Contains(stdout, fmt.Sprintf("of %d rows", n)) || !strings.Contains(stdout, fmt.Sprintf("%d already in", first)) {
				t.Errorf("rerun summary should cover all %d rows, %d of them resumed:\n%s", n, first, stdout)
			}
		})
	}
}

// --skip-bad skips and counts rows that cannot be scored (a text of one
// token, a text over the tokenizer's 1 MiB) instead of stopping; without it
// the first such row stops the run with exit 2, naming it.
func TestPerplexitySkipBad(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "mixed.jsonl")
	rows := []string{`{"id":"ok1","text":"a good long text to score, with many tokens in it."}`, `{"id":"one","text":"a"}`,
		fmt.Sprintf(`{"id":"huge","text":%q}`, strings.Repeat("z", 1<<20+10)), `{"id":"ok2","text":"another good text to score, also long enough."}`}
	os.WriteFile(in, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "ppl.jsonl")
	code, _, stderr := runCLI(t, pplArgs(in, out)...)
	if code != exitUsage || !strings.Contains(stderr, "--skip-bad") || crashTrace(stderr) {
		t.Fatalf("without --skip-bad: exit %d, want %d with a message naming --skip-bad:\n%s", code, exitUsage, stderr)
	}
	code, stdout, stderr := runCLI(t, append(pplArgs(in, out), "--skip-bad")...)
	if code != 0 {
		t.Fatalf("--skip-bad: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "of 2 rows") || !strings.Contains(stdout, "2 skipped") {
		t.Errorf("--skip-bad summary should score 2 rows and skip 2:\n%s", stdout)
	}
	checkIDsOnce(t, 4, out)
	for _, id := range []string{"one", "huge"} {
		if r := findRow(t, out, id); r["error"] == nil || r["error"] == "" {
			t.Errorf("skipped row %s has no error: %v", id, r)
		}
	}
}

// A missing --text-field is found before the model loads.
func TestPerplexityMissingFieldBeforeLoad(t *testing.T) {
	dir := t.TempDir()
	in := pplCorpus(t, dir, 3)
	code, _, stderr := runCLI(t, "perplexity", "tiny", "--input", in, "--text-field", "body", "--threads", "1")
	if code != exitUsage || !strings.Contains(stderr, "body") || strings.Contains(stderr, "model ready") || crashTrace(stderr) {
		t.Errorf("missing field: exit %d, want %d naming body before the model loads:\n%s", code, exitUsage, stderr)
	}
}

// With a plan mode, the response is scored after prompt and plan, and the
// summary names the layout; a plan mode without --plan-field is refused.
func TestPerplexityPlanLayout(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "plans.jsonl")
	var b strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&b, `{"id":"r%d","prompt":"Add %d and 2.","plan":"def solve():\n    return %d + 2","response":"The sum is %d."}`+"\n", i, i, i, i+2)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	base := []string{"-q", "perplexity", "tiny", "--input", in, "--threads", "1", "--parallel", "2", "--response-field", "response"}
	score := func(name string, extra ...string) ([]perplexityRow, string) {
		t.Helper()
		out := filepath.Join(dir, name+".jsonl")
		code, stdout, stderr := runCLI(t, append(append(base, "--output", out), extra...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, code, stderr)
		}
		return readPPLRows(t, out), stdout
	}
	direct, dsum := score("direct")
	planned, psum := score("codeplan", "--mode", "codeplan", "--plan-field", "plan")
	if !strings.Contains(dsum, "scored: response given prompt, direct mode, trained format") ||
		!strings.Contains(psum, "scored: response given prompt and plan (plan), codeplan mode, trained format") {
		t.Errorf("summaries do not name the layout:\n%s\n%s", dsum, psum)
	}
	for i := range direct {
		if direct[i].Tokens != planned[i].Tokens || direct[i].LogLik == planned[i].LogLik {
			t.Errorf("row %d: the plan changed nothing or changed the scored tokens: %+v vs %+v", i, direct[i], planned[i])
		}
	}
	code, _, stderr := runCLI(t, append(base, "--mode", "codeplan")...)
	if code != exitUsage || !strings.Contains(stderr, "--plan-field") {
		t.Errorf("codeplan mode without --plan-field: exit %d\n%s", code, stderr)
	}
}

// --mode/--format auto take the layout the adapter records (issue 21's
// "Perplexity for plan-trained models"): a codeplan-trained adapter needs
// the plan, and the summary names the layout it was scored in.
func TestPerplexityLayoutFromTheAdapter(t *testing.T) {
	dir := t.TempDir()
	lora := writeTrainedAdapter(t, dir, "codeplan", "trained")
	in := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(in, []byte(`{"id":"r","prompt":"Add 1 and 2.","plan":"def solve():\n    return 1 + 2","response":"The sum is 3."}`+"\n"), 0o644)
	base := []string{"-q", "perplexity", "tiny", "--lora", lora, "--input", in, "--threads", "1", "--response-field", "response"}
	code, _, stderr := runCLI(t, base...)
	if code != exitUsage || !strings.Contains(stderr, "codeplan mode") || !strings.Contains(stderr, "--plan-field") {
		t.Errorf("a codeplan-trained adapter without --plan-field: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, append(base, "--plan-field", "plan")...)
	if code != 0 || !strings.Contains(stderr, "scored: response given prompt and plan (plan), codeplan mode, trained format") {
		t.Errorf("with --plan-field: exit %d\n%s", code, stderr)
	}
}
