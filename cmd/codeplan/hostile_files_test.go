package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// runChild runs codeplan as a child process (see TestMain) and returns its
// exit code and standard error.
func runChild(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, _, stderr := runCLI(t, args...)
	return code, stderr
}

// crashTrace reports whether stderr shows a Go panic or fatal signal
// rather than one of our messages (Go also exits 2 then).
func crashTrace(stderr string) bool {
	for _, s := range []string{"goroutine ", "SIGSEGV", "SIGABRT", "panic:", "fatal error:"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// TestHostileFiles is the file part of the hostile-user campaign (issue 9):
// every bad input or output is refused with exit 2 (1 for a busy output or
// torn shard rows) and a message in user terms, before any model loads,
// without a crash trace, and without creating or changing output files.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t, dir, 4)
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for i := range 3000 {
		fmt.Fprintf(zw, `{"prompt":"question %d","response":"answer %d"}`+"\n", i, i)
	}
	zw.Close()
	truncated := file("cut.jsonl.gz", gz.String()[:gz.Len()/2])
	parquet := file("bad.parquet", "PAR1 not really a parquet file PAR1")
	empty := file("empty.jsonl", "")
	notes := file("notes.txt", "my notes, not a codeplan output")
	plans1 := file("plans-1.jsonl", `{"id":"a","index":0,"plan":"p"}`+"\n")
	rejects1 := file("rejects-1.jsonl", `{"id":"b","index":1,"reason":"too_short","detail":"d"}`+"\n")
	rejects2 := file("rejects-2.jsonl", `{"id":"c","index":2,"reason":"too_short","detail":"d"}`+"\n")
	ftData := file("ft.jsonl", `{"id":"a","prompt":"p","plan":"x = 1","response":"r"}`+"\n")
	torn := file("plans-2.jsonl", `{"id":"d","index":3,"plan":"p"}`+"\n"+`{"id":"e","ind`)
	out := filepath.Join(dir, "new", "out.jsonl") // must never be created
	ext := func(in, o string, extra ...string) []string {
		return append([]string{"-q", "extract", "tiny", "--input", in, "--output", o, "--threads", "1"}, extra...)
	}
	gen := func(in, o string, extra ...string) []string {
		return append([]string{"-q", "generate", "tiny", "--input", in, "--output", o, "--threads", "1"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"extract: missing input", ext(filepath.Join(dir, "nope.jsonl"), out), 2, "does not exist"},
		{"extract: folder as input", ext(dir, out), 2, "is a directory"},
		{"extract: empty input", ext(empty, out), 2, "holds no rows"},
		{"extract: truncated gzip", ext(truncated, out), 2, "ends in the middle of its data"},
		{"extract: corrupt parquet", ext(parquet, out), 2, "not a readable Parquet file"},
		{"extract: missing field", ext(corpus, out, "--prompt-field", "nosuch"), 2, "nosuch"},
		{"extract: input is the output", ext(corpus, corpus), 2, "is also an output file"},
		{"extract: device output", ext(corpus, "/dev/full"), 2, "/dev/full is a device, not a regular file"},
		{"extract: device rejects", ext(corpus, out, "--rejects", "/dev/null"), 2, "/dev/null is a device"},
		{"extract: foreign output", ext(corpus, notes), 2, "not written by codeplan"},
		{"extract: output under a file", ext(corpus, filepath.Join(notes, "out.jsonl")), 2, "cannot create the folder"},
		{"generate: missing input", gen(filepath.Join(dir, "nope.jsonl"), out), 2, "does not exist"},
		{"generate: device output", gen(corpus, "/dev/full"), 2, "not a regular file"},
		{"generate: truncated gzip", gen(truncated, out), 2, "ends in the middle"},
		{"merge: rejects glob after --rejects", []string{"merge", "--output", out, plans1, "--rejects-output", filepath.Join(dir, "new", "r.jsonl"), "--rejects", rejects1, rejects2}, 2, "is a rejected row"},
		{"merge: rejects as results", []string{"merge", "--output", out, rejects1}, 2, "--rejects-only"},
		{"merge: torn shard row", []string{"merge", "--output", out, plans1, torn}, 1, "torn row"},
		{"merge: device output", []string{"merge", "--output", "/dev/full", plans1}, 2, "/dev/full is a device"},
		{"merge: missing input", []string{"merge", "--output", out, filepath.Join(dir, "nope.jsonl")}, 2, "no such file"},
		{"merge: folder input", []string{"merge", "--output", out, dir}, 2, "is a directory"},
		{"finetune: truncated gzip data", []string{"-q", "finetune", "tiny", "--data", truncated, "--out", filepath.Join(dir, "new", "a.gguf")}, 2, "ends in the middle"},
		{"finetune: device adapter output", []string{"-q", "finetune", "tiny", "--data", ftData, "--out", "/dev/full"}, 2, "/dev/full is a device"},
		{"--cpuprofile on a device", []string{"--cpuprofile", "/dev/full", "merge", "--output", out, plans1}, 2, "--cpuprofile: /dev/full is a device"},
	}
	notesBefore, _ := os.ReadFile(notes)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runChild(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || crashTrace(stderr) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, tc.code, tc.want, stderr)
			}
			if strings.Contains(stderr, "SkipBad") || strings.Contains(stderr, ".tmp") {
				t.Errorf("message leaks internals: %s", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
				t.Fatalf("a refused run created files: %v", err)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.*.*")); len(left) > 1 || (len(left) == 1 && filepath.Base(left[0]) != "cut.jsonl.gz") {
		t.Errorf("refused runs left files behind: %v", left)
	}
	if after, _ := os.ReadFile(notes); !bytes.Equal(after, notesBefore) {
		t.Error("the foreign output was changed")
	}
	for _, dev := range []string{"/dev/full", "/dev/null"} {
		if st, err := os.Stat(dev); err != nil || st.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("%s is no longer a device", dev)
		}
	}
	// --skip-bad merges the torn shard without its torn row, and says so.
	merged := filepath.Join(dir, "merged.jsonl")
	code, stderr := runChild(t, "merge", "--skip-bad", "--output", merged, plans1, torn)
	if code != 0 || !strings.Contains(stderr, "torn") || countLines(merged) != 2 {
		t.Errorf("--skip-bad merge: exit %d, %d rows; stderr:\n%s", code, countLines(merged), stderr)
	}
	code, stderr = runChild(t, "merge", "--rejects-only", "--output", filepath.Join(dir, "rejects.jsonl"), rejects1, rejects2)
	if code != 0 || countLines(filepath.Join(dir, "rejects.jsonl")) != 2 {
		t.Errorf("--rejects-only merge: exit %d; stderr:\n%s", code, stderr)
	}
}

// TestSecondRunOnBusyOutputFails: while one run holds the output, a second
// fails at once (before its model loads) naming the holder's pid, and
// writes nothing.
func TestSecondRunOnBusyOutputFails(t *testing.T) {
	dir := t.TempDir()
	in := writeCorpus(t, dir, 4)
	out := filepath.Join(dir, "plans.jsonl")
	w, _, err := dataset.OpenAppend(out) // the "first run": this test process
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	code, stderr := runChild(t, "-q", "extract", "tiny", "--input", in, "--output", out, "--threads", "1")
	want := "being written by another codeplan run (pid " + strconv.Itoa(os.Getpid()) + ")"
	if code != 1 || !strings.Contains(stderr, want) || crashTrace(stderr) {
		t.Errorf("exit %d, want 1 with %q; stderr:\n%s", code, want, stderr)
	}
	if countLines(out) != 0 {
		t.Error("the second run wrote rows")
	}
}

// TestEvalResumeKeyedOnAdapter reproduces issue 9 item 6: eval with an
// adapter into the folder of a base-model run used to say "already done" and
// report the base model's accuracy as the adapter's. Now it is refused with
// both settings named; the default folder names the adapter, so the plain
// command does not collide at all.
func TestEvalResumeKeyedOnAdapter(t *testing.T) {
	dir := t.TempDir()
	lora := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2}); err != nil {
		t.Fatal(err)
	}
	evalDir := filepath.Join(dir, "eval")
	base := []string{"-q", "eval", "tiny", "--bench", "synth-arith", "--steps", "1", "--n", "1", "--modes", "direct",
		"--max-tokens", "4", "--threads", "1", "--parallel", "2"}
	if code := run(append(append([]string{"codeplan"}, base...), "--out", evalDir)); code != 0 {
		t.Fatalf("base run: exit %d", code)
	}
	code, stderr := runChild(t, append(base, "--out", evalDir, "--lora", lora)...)
	if code != 2 || !strings.Contains(stderr, "lora=none") || !strings.Contains(stderr, "lora=a.gguf@") || crashTrace(stderr) {
		t.Errorf("adapter into the base run's folder: exit %d; stderr:\n%s", code, stderr)
	}
	if got, want := evaluate.DefaultOut("synth-arith", "tiny", lora), "eval-synth-arith-tiny-a"; got != want {
		t.Errorf("default folder %q, want %q", got, want)
	}
}

// TestGenerateResumeKeyedOnSettings: generate with another mode or adapter
// into the output of an earlier run is refused, naming both settings;
// the same command resumes.
func TestGenerateResumeKeyedOnSettings(t *testing.T) {
	dir := t.TempDir()
	in := writeCorpus(t, dir, 2)
	out := filepath.Join(dir, "answers.jsonl")
	lora := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2}); err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "generate", "tiny", "--input", in, "--output", out, "--mode", "direct", "--max-tokens", "4", "--threads", "1", "--parallel", "2"}
	if code := run(append([]string{"codeplan"}, args...)); code != 0 || countLines(out) != 2 {
		t.Fatalf("first run: exit %d, %d rows", code, countLines(out))
	}
	for _, tc := range []struct {
		extra      []string
		file, this string
	}{
		{[]string{"--mode", "codeplan"}, "mode=direct", "mode=codeplan"},
		{[]string{"--lora", lora}, "lora=none", "lora=a.gguf@"},
		{[]string{"--temperature", "0.7"}, "temperature=0", "temperature=0.7"},
	} {
		code, stderr := runChild(t, append(args, tc.extra...)...)
		if code != 2 || !strings.Contains(stderr, tc.file) || !strings.Contains(stderr, tc.this) || crashTrace(stderr) {
			t.Errorf("%v: exit %d, want 2 naming %s and %s; stderr:\n%s", tc.extra, code, tc.file, tc.this, stderr)
		}
	}
	if code := run(append([]string{"codeplan"}, args...)); code != 0 || countLines(out) != 2 {
		t.Errorf("same settings: exit %d, %d rows", code, countLines(out))
	}
}
