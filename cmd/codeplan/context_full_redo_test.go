package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// byID reads a JSONL file's rows by id, and fails the test when an id is
// there twice or the file does not hold ids ids.
func byID(t *testing.T, path string, ids int) map[string]map[string]any {
	t.Helper()
	rows := map[string]map[string]any{}
	for _, r := range jsonlRows(t, path) {
		id := r["id"].(string)
		if rows[id] != nil {
			t.Errorf("%s: id %s appears twice", path, id)
		}
		rows[id] = r
	}
	if len(rows) != ids {
		t.Errorf("%s: %d ids, want %d", path, len(rows), ids)
	}
	return rows
}

// TestGenerateRedoesContextFullWhenCtxIsRaised: the random tiny model never
// stops early, so with --max-tokens 400 after a 100-token plan the longer
// prompt b fills a sequence of --ctx 1000 (which llama.cpp pads to 1024)
// before its answer's limit, while the short ones fit. b is written with
// finish context_full, an error naming the --ctx that fits (fit_ctx) and
// the padded seq_ctx; the summary says so. A rerun at --ctx 1020 (1024 a
// sequence again) redoes nothing; the advised --ctx redoes b alone, which
// then reaches its limits; later reruns redo nothing.
func TestGenerateRedoesContextFullWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(in, []byte(`{"id":"a","prompt":"What is 0 plus 2?"}
{"id":"b","prompt":"`+strings.Repeat("word ", 30)+`How many?"}
{"id":"c","prompt":"What is 2 plus 2?"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "answers.jsonl")
	run := func(ctx string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, "-q", "generate", "tiny", "--input", in, "--output", out, "--ctx", ctx, "--parallel", "1",
			"--threads", "1", "--mode", "codeplan", "--max-plan-tokens", "100", "--max-tokens", "400")
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
		return stdout
	}
	// full checks a row that reached both limits.
	full := func(label string, r map[string]any) {
		t.Helper()
		if r["finish"] != "length" || r["plan_finish"] != "length" || r["plan_tokens"] != float64(100) || r["answer_tokens"] != float64(400) ||
			r["error"] != nil || r["seq_ctx"] != nil || r["fit_ctx"] != nil {
			t.Errorf("%s: row %s: %v", label, r["id"], r)
		}
	}
	first := run("1000")
	rows := byID(t, out, 3)
	full("--ctx 1000", rows["a"])
	full("--ctx 1000", rows["c"])
	b := rows["b"]
	fit, _ := b["fit_ctx"].(float64)
	errText, _ := b["error"].(string)
	if b["finish"] != "context_full" || b["seq_ctx"] != float64(1024) || fit <= 1024 ||
		!strings.HasPrefix(errText, "context_full: ") || !strings.Contains(errText, "--ctx "+strconv.Itoa(int(fit))+" would fit it") {
		t.Fatalf("--ctx 1000: row b should be context_full with seq_ctx 1024 and the --ctx that fits: %v", b)
	}
	if b["answer_tokens"].(float64) >= 400 {
		t.Errorf("row b reached its limit, yet context_full: %v", b)
	}
	if !regexpMatch(first, `context full\s+1 rows .*context_full.*--ctx `+strconv.Itoa(int(fit))+` would fit them, and a rerun with it redoes them`) {
		t.Errorf("the summary should name the context_full row and the --ctx that fits:\n%s", first)
	}
	if again := run("1020"); !strings.Contains(again, "rows processed    0") {
		t.Fatalf("--ctx 1020 holds 1024 tokens a sequence, as the last run did, and should redo nothing:\n%s", again)
	}
	advised := run(strconv.Itoa(int(fit)))
	if !strings.Contains(advised, "rows processed    1") || !strings.Contains(advised, "already done 2") || strings.Contains(advised, "context full") {
		t.Fatalf("the advised --ctx should redo exactly row b:\n%s", advised)
	}
	for _, r := range byID(t, out, 3) {
		full("advised --ctx", r)
	}
	for _, ctx := range []string{strconv.Itoa(int(fit)), "4096", "1000"} {
		if rerun := run(ctx); !strings.Contains(rerun, "rows processed    0") {
			t.Fatalf("--ctx %s after the redo should redo nothing:\n%s", ctx, rerun)
		}
	}
}

// TestEvalRedoesContextFullWhenCtxIsRaised: with --max-plan-tokens 600 the
// codeplan plans of both items fill a sequence of --ctx 1000 (1024) before
// their limit, while the direct answers fit. Those two rows are written as
// could not run (finish and plan_finish context_full, not scored, seq_ctx
// 1024, fit_ctx), the run's summary names the --ctx that fits, and the
// report counts them as could not run, not as plain wrong answers. --ctx
// 1020 changes nothing; the advised --ctx redoes exactly those two rows,
// whose plans then reach 600 tokens, and the report has none left.
func TestEvalRedoesContextFullWhenCtxIsRaised(t *testing.T) {
	dir := t.TempDir()
	bench := filepath.Join(dir, "bench.jsonl")
	if err := os.WriteFile(bench, []byte(`{"id":"q1","question":"What is 2+3?","answer":"#### 5"}
{"id":"q2","question":"`+strings.Repeat("apples ", 10)+`How many?","answer":"#### 7"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ev")
	results := filepath.Join(out, "results.jsonl")
	run := func(ctx string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, "-q", "eval", "tiny", "--bench", bench, "--out", out, "--modes", "direct,codeplan",
			"--ctx", ctx, "--parallel", "1", "--threads", "1", "--max-tokens", "50", "--max-plan-tokens", "600")
		if code != 0 {
			t.Fatalf("--ctx %s: exit %d\n%s%s", ctx, code, stdout, stderr)
		}
		return stdout
	}
	first := run("1000")
	fit := 0.0
	for id, r := range byID(t, results, 4) {
		if r["mode"] == "direct" {
			if r["finish"] != "length" || r["error"] != nil || r["seq_ctx"] != nil {
				t.Errorf("--ctx 1000: %s: %v", id, r)
			}
			continue
		}
		errText, _ := r["error"].(string)
		f, _ := r["fit_ctx"].(float64)
		if r["finish"] != "context_full" || r["plan_finish"] != "context_full" || r["seq_ctx"] != float64(1024) || f <= 1024 ||
			r["correct"] != false || r["extracted"] != "" || !strings.Contains(errText, "before the plan reached its limit of 600 tokens: --ctx "+strconv.Itoa(int(f))+" would fit it") {
			t.Errorf("--ctx 1000: %s should be context_full, not scored, with seq_ctx 1024 and the --ctx that fits: %v", id, r)
		}
		fit = max(fit, f)
	}
	if !regexpMatch(first, `context full\s+2 rows .*could not run: --ctx `+strconv.Itoa(int(fit))+` would fit them, and a rerun with it redoes them`) ||
		!strings.Contains(first, "2 could not run (prompt too long or context full: codeplan 2), counted as wrong") {
		t.Errorf("the summary and the report should name the 2 context_full rows and the --ctx that fits:\n%s", first)
	}
	before, _ := os.ReadFile(results)
	run("1020")
	if after, _ := os.ReadFile(results); string(after) != string(before) {
		t.Fatalf("--ctx 1020 holds 1024 tokens a sequence, as the last run did, and should change nothing:\n%s\n---\n%s", before, after)
	}
	advised := run(strconv.Itoa(int(fit)))
	if !strings.Contains(advised, "4 selected: 2 already done, 2 written now") || strings.Contains(advised, "could not run") {
		t.Fatalf("the advised --ctx should redo exactly the 2 context_full rows:\n%s", advised)
	}
	for id, r := range byID(t, results, 4) {
		if r["error"] != nil || r["seq_ctx"] != nil || r["finish"] != "length" ||
			r["mode"] == "codeplan" && (r["plan_finish"] != "length" || r["plan_tokens"] != float64(600)) {
			t.Errorf("advised --ctx: %s: %v", id, r)
		}
	}
	before, _ = os.ReadFile(results)
	for _, ctx := range []string{strconv.Itoa(int(fit)), "4096", "1000"} {
		run(ctx)
		if after, _ := os.ReadFile(results); string(after) != string(before) {
			t.Fatalf("--ctx %s after the redo changed the results", ctx)
		}
	}
}
