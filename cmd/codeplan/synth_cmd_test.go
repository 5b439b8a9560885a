package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestSynthCommand checks that synth writes n rows per (kind, k), that a
// second split made with --exclude shares no prompt with the first, and
// that bad input is a usage error that leaves no output file.
func TestSynthCommand(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "train.jsonl")
	test := filepath.Join(dir, "test.jsonl")
	if code := run([]string{"codeplan", "-q", "synth", "--kinds", "truth,text", "--steps", "1-2", "--n", "150", "--seed", "1", "--out", train}); code != 0 {
		t.Fatalf("synth exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "synth", "--kinds", "truth,text", "--steps", "1-2", "--n", "150", "--seed", "2", "--exclude", train, "--out", test}); code != 0 {
		t.Fatalf("synth --exclude exit %d", code)
	}
	prompts := func(path string) map[string]int {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out := map[string]int{}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r struct {
				Kind   string `json:"kind"`
				K      int    `json:"k"`
				Prompt string `json:"prompt"`
				Plan   string `json:"plan"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.Prompt == "" || r.Plan == "" || (r.Kind != "truth" && r.Kind != "string") || r.K < 1 || r.K > 2 {
				t.Fatalf("bad row %s", sc.Text())
			}
			out[r.Prompt]++
		}
		return out
	}
	a, b := prompts(train), prompts(test)
	if len(a) != 600 || len(b) != 600 {
		t.Fatalf("%d and %d distinct prompts, want 600 each", len(a), len(b))
	}
	for p := range b {
		if a[p] > 0 {
			t.Fatalf("prompt in both splits: %q", p)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	for _, args := range [][]string{
		{"--kinds", "poetry", "--out", bad},
		{"--steps", "0-2", "--out", bad},
		{"--kinds", "order", "--steps", "9", "--out", bad},
		{"--n", "0", "--out", bad},
		{"--exclude", filepath.Join(dir, "missing.jsonl"), "--out", bad},
	} {
		if code := run(append([]string{"codeplan", "-q", "synth"}, args...)); code != exitUsage {
			t.Errorf("synth %v: exit %d, want %d", args, code, exitUsage)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Fatalf("synth %v left an output file", args)
		}
	}
}
