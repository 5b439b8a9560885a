package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestExtractContextFull: with a context too small for prompt plus plan
// limit, extract warns at start, rejects the cut plans as context_full (not
// not_terminated), and its summary names a --ctx that fits them; at that
// --ctx the same rows are no longer cut by the context.
func TestExtractContextFull(t *testing.T) {
	dir := t.TempDir()
	in := writeCorpus(t, dir, 4)
	out := filepath.Join(dir, "small.jsonl")
	sumPath := filepath.Join(dir, "small.summary.json")
	args := []string{"extract", "tiny", "--input", in, "--output", out, "--parallel", "2", "--max-plan-tokens", "600",
		"--threads", "1", "--ctx", "3072", "--predict=false", "--summary", sumPath}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "context_full") || !strings.Contains(stderr, "each sequence holds 1024 tokens") {
		t.Errorf("no warning about the context at start:\n%s", stderr)
	}
	var sum struct {
		Reasons map[string]int `json:"reject_reasons"`
		Fit     int            `json:"context_full_fit_ctx"`
	}
	b, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Reasons["context_full"] == 0 || sum.Reasons["not_terminated"] != 0 || sum.Fit <= 3072 {
		t.Fatalf("summary %s", b)
	}
	if !strings.Contains(stdout, "context_full") || !strings.Contains(stdout, "would fit them") {
		t.Errorf("printed summary without context_full:\n%s", stdout)
	}
	rej, err := os.ReadFile(rejectsPath(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(rej)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r["reason"] == "context_full" && !strings.Contains(r["detail"].(string), "--ctx ") {
			t.Errorf("reject without the --ctx that fits: %v", r)
		}
	}
	// At the --ctx the summary names, nothing is cut by the context.
	out2 := filepath.Join(dir, "fit.jsonl")
	sum2 := filepath.Join(dir, "fit.summary.json")
	args2 := []string{"extract", "tiny", "--input", in, "--output", out2, "--parallel", "2", "--max-plan-tokens", "600",
		"--threads", "1", "--ctx", strconv.Itoa(sum.Fit), "--predict=false", "--summary", sum2}
	if code, _, stderr := runCLI(t, args2...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ = os.ReadFile(sum2)
	sum.Reasons = nil
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Reasons["context_full"] != 0 {
		t.Errorf("at --ctx %d rows are still cut by the context: %s", sum.Fit, b)
	}
}
