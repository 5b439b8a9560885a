package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func extractArgs(in, out string, extra ...string) []string {
	args := []string{"codeplan", "-q", "extract", "tiny", "--input", in, "--output", out,
		"--parallel", "4", "--max-plan-tokens", "48", "--threads", "1", "--ctx", "8192"}
	return append(args, extra...)
}

// checkExactlyOnce asserts that output+rejects hold every input id once.
func checkExactlyOnce(t *testing.T, n int, out string) {
	t.Helper()
	checkIDsOnce(t, n, out, rejectsPath(out))
}

func rejectsPath(out string) string {
	return out[:len(out)-len(filepath.Ext(out))] + ".rejects.jsonl"
}

// runSignalled runs the CLI as a child process (see TestMain) that sends
// itself sig once it has collected after rows, and returns its exit error.
func runSignalled(t *testing.T, after int, sig string, args ...string) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1", "CODEPLAN_TEST_SIGNAL="+sig, "CODEPLAN_TEST_SIGNAL_AFTER="+strconv.Itoa(after))
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the run did not stop within 120s")
		return nil
	}
}

// extractSignalled runs extract as a child process that sends itself sig
// once it has collected after rows (runSignalled).
func extractSignalled(t *testing.T, in, out string, after int, sig string) error {
	t.Helper()
	return runSignalled(t, after, sig, extractArgs(in, out)[1:]...)
}

// TestExtractResumesAfterKill kills extract with SIGKILL mid-run (from
// inside, after exactly 6 rows), reruns it and checks that every row ends up
// in the results exactly once.
func TestExtractResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	const n = 48
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans.jsonl")
	err := extractSignalled(t, in, out, 6, "KILL")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed: %v", err)
	}
	if first := len(readIDs(t, out, rejectsPath(out))); first != 6 {
		t.Fatalf("%d rows before the kill, want 6", first)
	}
	// Simulate a torn write as well: half a line at the end of the rejects.
	f, err := os.OpenFile(rejectsPath(out), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"r0`)
	f.Close()
	if code := run(extractArgs(in, out)); code != 0 {
		t.Fatalf("rerun exit code %d", code)
	}
	checkExactlyOnce(t, n, out)
}

// TestExtractInterruptFinishesCleanly sends SIGINT (Ctrl-C) once 4 rows are
// done: the process finishes the rows in flight, exits with the interrupted
// status (130, never 0) with fewer rows than the corpus, and a rerun
// completes the rest.
func TestExtractInterruptFinishesCleanly(t *testing.T) {
	dir := t.TempDir()
	const n = 48
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans.jsonl")
	err := extractSignalled(t, in, out, 4, "INT")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after Ctrl-C: %v, want exit status %d", err, exitInterrupted)
	}
	first := len(readIDs(t, out, rejectsPath(out)))
	if first < 4 || first >= n {
		t.Fatalf("%d rows after Ctrl-C at row 4, want at least 4 and fewer than %d", first, n)
	}
	if code := run(extractArgs(in, out)); code != 0 {
		t.Fatalf("rerun exit code %d", code)
	}
	checkExactlyOnce(t, n, out)
}

// TestShardsMergeToUnsharded runs three shards and merges them: the result
// must equal one unsharded run line for line.
func TestShardsMergeToUnsharded(t *testing.T) {
	dir := t.TempDir()
	const n = 30
	in := writeCorpus(t, dir, n)
	full := filepath.Join(dir, "full.jsonl")
	if code := run(extractArgs(in, full)); code != 0 {
		t.Fatalf("unsharded exit %d", code)
	}
	var outs, rejs []string
	for k := 1; k <= 3; k++ {
		o := filepath.Join(dir, "shard"+string(rune('0'+k))+".jsonl")
		if code := run(extractArgs(in, o, "--shard", string(rune('0'+k))+"/3")); code != 0 {
			t.Fatalf("shard %d exit %d", k, code)
		}
		outs = append(outs, o)
		rejs = append(rejs, rejectsPath(o))
	}
	merged := filepath.Join(dir, "merged.jsonl")
	mergedRej := filepath.Join(dir, "merged.rejects.jsonl")
	args := append([]string{"codeplan", "-q", "merge", "--output", merged, "--rejects-output", mergedRej}, outs...)
	for _, r := range rejs {
		args = append(args, "--rejects", r)
	}
	if code := run(args); code != 0 {
		t.Fatalf("merge exit %d", code)
	}
	// A single run writes rows in completion order; merging it alone puts
	// them in input order, which is what the merged shards must equal.
	fullSorted := filepath.Join(dir, "full-sorted.jsonl")
	fullSortedRej := filepath.Join(dir, "full-sorted.rejects.jsonl")
	if code := run([]string{"codeplan", "-q", "merge", "--output", fullSorted, "--rejects-output", fullSortedRej, full, "--rejects", rejectsPath(full)}); code != 0 {
		t.Fatalf("merge of the full run: exit %d", code)
	}
	for _, pair := range [][2]string{{fullSorted, merged}, {fullSortedRej, mergedRej}} {
		a, _ := os.ReadFile(pair[0])
		b, _ := os.ReadFile(pair[1])
		if string(a) != string(b) {
			t.Errorf("%s and %s differ", filepath.Base(pair[0]), filepath.Base(pair[1]))
		}
	}
	ids := readIDs(t, merged, mergedRej)
	sort.Strings(ids)
	if len(ids) != n {
		t.Errorf("merged %d rows, want %d", len(ids), n)
	}
}

func TestExtractBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"prompt\":\"a\",\"response\":\"b\"}\n{not json\n{\"prompt\":\"c\"}\n"), 0o644)
	out := filepath.Join(dir, "o.jsonl")
	if code := run(extractArgs(bad, out)); code != exitUsage {
		t.Errorf("malformed input: exit %d, want %d", code, exitUsage)
	}
	if code := run(extractArgs(bad, out, "--skip-bad")); code != 0 {
		t.Errorf("--skip-bad: exit %d", code)
	}
	if got := len(readIDs(t, out, rejectsPath(out))); got != 1 {
		t.Errorf("--skip-bad kept %d rows, want 1", got)
	}
	if code := run([]string{"codeplan", "extract", "tiny", "--output", out}); code != exitUsage {
		t.Errorf("missing --input: exit %d", code)
	}
	if code := run(extractArgs(bad, out, "--shard", "4/3")); code != exitUsage {
		t.Errorf("bad shard: exit %d", code)
	}
	if code := run([]string{"codeplan", "extract", filepath.Join(dir, "missing.gguf"), "--input", bad, "--output", out}); code != exitUsage {
		t.Errorf("missing model: exit %d", code)
	}
}

// TestExtractOpenAIBackend runs extract against a fake OpenAI-compatible
// server on loopback: accepted plans come from its replies, a reply cut by
// max_tokens is rejected as not terminated, and a 503 is retried.
func TestExtractOpenAIBackend(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model"}]}`)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, `{"error":{"message":"warming up"}}`, http.StatusServiceUnavailable)
			return
		}
		var req struct {
			Model    string                     `json:"model"`
			Messages []struct{ Content string } `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		finish, text := "stop", "```python\\ndef solve(question):\\n    numbers = parse_numbers(question)\\n    return add_all(numbers)\\n```"
		if strings.Contains(req.Messages[0].Content, "What is 5 plus") {
			finish, text = "length", "```python\\ndef solve(question):\\n    for"
		}
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"%s"},"finish_reason":%q}],"usage":{"prompt_tokens":50,"completion_tokens":20}}`, req.Model, text, finish)
	}))
	defer srv.Close()
	dir := t.TempDir()
	in := writeCorpus(t, dir, 8)
	out := filepath.Join(dir, "plans.jsonl")
	code := run([]string{"codeplan", "-q", "extract", "--backend", "openai", "--base-url", srv.URL + "/v1", "--model", "fake-model",
		"--input", in, "--output", out, "--concurrency", "3"})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := countLines(out); got != 7 {
		t.Errorf("%d accepted rows, want 7", got)
	}
	rej, _ := os.ReadFile(rejectsPath(out))
	if !strings.Contains(string(rej), `"reason":"not_terminated"`) || countLines(rejectsPath(out)) != 1 {
		t.Errorf("rejects: %s", rej)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), `"model":"fake-model"`) || !strings.Contains(string(data), "parse_numbers(question)") {
		t.Errorf("output rows: %.300s", data)
	}
}
