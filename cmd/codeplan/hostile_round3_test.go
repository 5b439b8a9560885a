package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/dataset"
)

// fileState is what "unchanged" means for a file: its type and, for a
// regular file, its content.
func fileState(path string) string {
	st, err := os.Lstat(path)
	if err != nil {
		return "absent"
	}
	if !st.Mode().IsRegular() {
		return st.Mode().String()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "unreadable"
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// hostileCase is one case of the campaign: a command line run as a child
// process (see TestMain) in the case folder, its exit status, a phrase its
// output must hold, and the files it must leave as they were.
type hostileCase struct {
	name   string
	args   []string
	stdin  string
	stdout string // a file to send standard output to ("" = a buffer)
	code   int
	want   string
	same   []string
	// setup runs before the command; the function it returns, after.
	setup func(t *testing.T) func()
	check func(t *testing.T) // after the command
}

// runHostileCase runs c in dir and checks everything it promises.
func runHostileCase(t *testing.T, dir string, c hostileCase) {
	t.Helper()
	if c.setup != nil {
		defer c.setup(t)()
	}
	before := map[string]string{}
	for _, p := range c.same {
		before[p] = fileState(p)
	}
	cmd := exec.Command(os.Args[0], append([]string{"-q"}, c.args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader(c.stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if c.stdout != "" {
		f, err := os.OpenFile(c.stdout, os.O_WRONLY, 0)
		if err != nil {
			t.Skip(err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	for _, mark := range crashMarks {
		if strings.Contains(out.String(), mark) {
			t.Fatalf("crashed (%q in output), exit %d:\n%s", mark, code, tailOf(out.String()))
		}
	}
	if code != c.code || !strings.Contains(out.String(), c.want) {
		t.Errorf("exit %d, want %d with %q:\n%s", code, c.code, c.want, tailOf(out.String()))
	}
	for _, p := range c.same {
		if now := fileState(p); now != before[p] {
			t.Errorf("%s changed: %s -> %s", p, before[p], now)
		}
	}
	if c.check != nil {
		c.check(t)
	}
}

// TestHostileRound3 is issue 20's campaign as a table: rows lost to a
// merge onto a running output, devices clobbered, endless inputs, write
// errors ignored, out-of-range flags accepted. Last round's cases are the
// tables of TestHostileInputs and TestHostileFiles, run the same way.
func TestHostileRound3(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Base(writeCorpus(t, dir, 4))
	file := func(name, content string) string {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, name)
	}
	shard := file("shard.jsonl", `{"id":"s1","index":0,"plan":"p"}`+"\n")
	busy := file("busy.jsonl", "")
	os.Remove(busy)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "null-link")
	if err := os.Symlink(os.DevNull, link); err != nil {
		t.Fatal(err)
	}
	fullMD := filepath.Join(dir, "full.md") // chat's /save wants .md or .jsonl
	if err := os.Symlink("/dev/full", fullMD); err != nil {
		t.Fatal(err)
	}
	// holdOutput is a running extract or generate: it holds busy's lock
	// with two rows written.
	holdOutput := func(t *testing.T) func() {
		w, _, err := dataset.OpenAppend(busy)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(map[string]any{"id": "a", "index": 0})
		w.Write(map[string]any{"id": "b", "index": 1})
		return func() {
			w.Close()
			os.Remove(busy)
		}
	}
	dead := func() int {
		c := exec.Command("true")
		c.Run()
		return c.Process.Pid
	}()
	stale := filepath.Join(dir, ".merged.jsonl.tmp-"+strconv.Itoa(dead)+"-1")
	// --text-field names a field the corpus has: the input is checked before
	// the output is opened, and these cases are about the output.
	ppl := []string{"perplexity", "tiny", "--threads", "1", "--text-field", "question"}
	small := []string{"--threads", "1", "--max-tokens", "4", "--max-plan-tokens", "4"}
	gen := func(extra ...string) []string {
		return append(append([]string{"generate", "tiny", "--input", in, "--output", "g.jsonl"}, small...), extra...)
	}
	initArgs := []string{"model", "init", "--layers", "1", "--embd", "8", "--heads", "1", "--ff", "8", "--force", "--out"}
	longLine := strings.Repeat("a", dataset.MaxInputLine+1024)
	full, null := "/dev/full", os.DevNull
	devs := []string{full, null, fifo, link}

	cases := []hostileCase{
		// Lost or mixed rows.
		{name: "merge onto a running run's output", args: []string{"merge", "--output", busy, shard}, code: 1,
			want: "being written by another codeplan run (pid " + strconv.Itoa(os.Getpid()) + ")", setup: holdOutput, same: []string{busy}},
		{name: "merge of an output still being written", args: []string{"merge", "--output", "m.jsonl", busy}, code: 1,
			want: "still being written", setup: holdOutput, same: []string{busy, filepath.Join(dir, "m.jsonl")}},
		{name: "synth onto a running run's output", args: []string{"synth", "--n", "1", "--out", busy}, code: 1,
			want: "being written by", setup: holdOutput, same: []string{busy}},
		{name: "perplexity --output onto a running run's output", args: append(ppl, "--input", in, "--output", busy), code: 1,
			want: "being written by", setup: holdOutput, same: []string{busy}},
		{name: "stale temporary of a killed merge", args: []string{"-q=false", "merge", "--output", "merged.jsonl", shard}, code: 0,
			want: "removed a temporary file left by a run that was killed",
			setup: func(t *testing.T) func() {
				os.WriteFile(stale, make([]byte, 1<<20), 0o600)
				return func() {}
			},
			check: func(t *testing.T) {
				if _, err := os.Stat(stale); !os.IsNotExist(err) {
					t.Errorf("stale temporary kept: %v", err)
				}
			}},
		// Clobbered devices, FIFOs and symlinks to devices: exit 2.
		{name: "synth --out /dev/full", args: []string{"synth", "--n", "1", "--out", full}, code: 2, want: "/dev/full is a device", same: devs},
		{name: "synth --out FIFO", args: []string{"synth", "--n", "1", "--out", fifo}, code: 2, want: "is a named pipe", same: devs},
		{name: "synth --out symlink to a device", args: []string{"synth", "--n", "1", "--out", link}, code: 2, want: "is a device", same: devs},
		{name: "model init --out /dev/full", args: append(initArgs, full), code: 2, want: "--output: /dev/full is a device", same: devs},
		{name: "model init --out FIFO", args: append(initArgs, fifo), code: 2, want: "is a named pipe", same: devs},
		{name: "model random --out /dev/null", args: []string{"model", "random", "--shape", "1b", "--out", null}, code: 2, want: "--output: /dev/null is a device", same: devs},
		{name: "model tiny --out symlink to a device", args: []string{"model", "tiny", "--out", link}, code: 2, want: "is a device", same: devs},
		{name: "chat /save onto a symlink to /dev/full", args: append([]string{"chat", "tiny"}, small...), stdin: "/save full.md\n", code: 2, want: "not a regular file", same: append([]string{fullMD}, devs...)},
		{name: "report onto a symlink to /dev/full", args: []string{"report", "--out", "rep", "ev"}, code: 2, want: "rep/report.md is a device",
			same: devs, setup: func(t *testing.T) func() {
				if code, _, stderr := runCLI(t, "-q", "eval", "tiny", "--bench", "synth-arith", "--steps", "1", "--n", "1", "--modes", "direct",
					"--max-tokens", "4", "--threads", "1", "--out", filepath.Join(dir, "ev")); code != 0 {
					t.Fatalf("eval for the report: exit %d\n%s", code, stderr)
				}
				os.MkdirAll(filepath.Join(dir, "rep"), 0o755)
				os.Symlink(full, filepath.Join(dir, "rep", "report.md"))
				return func() {}
			}},
		{name: "tokenizer train onto a symlink to /dev/full", args: []string{"tokenizer", "train", "--input", in, "--output", "tok"}, code: 2,
			want: "tok/tokenizer.json is a device", same: devs, setup: func(t *testing.T) func() {
				os.MkdirAll(filepath.Join(dir, "tok"), 0o755)
				os.Symlink(full, filepath.Join(dir, "tok", "tokenizer.json"))
				return func() {}
			}},
		{name: "perplexity --output FIFO", args: append(ppl, "--input", in, "--output", fifo), code: 2, want: "named pipe", same: devs},
		{name: "extract --summary /dev/full", args: []string{"extract", "tiny", "--input", in, "--output", "e.jsonl", "--summary", full}, code: 2,
			want: "--summary: /dev/full is a device", same: append([]string{filepath.Join(dir, "e.jsonl")}, devs...)},
		// Device inputs and endless lines.
		{name: "generate --input /dev/zero", args: append([]string{"generate", "tiny", "--input", "/dev/zero", "--output", "g0.jsonl"}, small...), code: 2,
			want: "input /dev/zero is a device", same: []string{filepath.Join(dir, "g0.jsonl")}},
		{name: "extract --input /dev/zero", args: []string{"extract", "tiny", "--input", "/dev/zero", "--output", "e0.jsonl"}, code: 2, want: "is a device",
			same: []string{filepath.Join(dir, "e0.jsonl")}},
		{name: "finetune --data /dev/zero", args: []string{"finetune", "tiny", "--data", "/dev/zero", "--out", "a0.gguf"}, code: 2, want: "is a device",
			same: []string{filepath.Join(dir, "a0.gguf")}},
		{name: "perplexity --input /dev/zero", args: append(ppl, "--input", "/dev/zero"), code: 2, want: "is a device"},
		{name: "eval --bench /dev/zero", args: []string{"eval", "tiny", "--bench", "/dev/zero", "--out", "ev0"}, code: 2, want: "is a device",
			same: []string{filepath.Join(dir, "ev0")}},
		{name: "compare --input /dev/zero", args: []string{"compare", "--input", "/dev/zero", "--output", "cmp", "direct=ev"}, code: 2, want: "is a device",
			same: []string{filepath.Join(dir, "cmp")}},
		{name: "extract --template /dev/zero", args: []string{"extract", "tiny", "--input", in, "--output", "e.jsonl", "--template", "/dev/zero"}, code: 2,
			want: "not a regular file", same: []string{filepath.Join(dir, "e.jsonl")}},
		{name: "generate: one endless line on stdin", args: append([]string{"generate", "tiny", "--input", "-", "--output", "g1.jsonl"}, small...),
			stdin: longLine, code: 2, want: "stdin:1: a line longer than 64 MiB"},
		// Write errors on standard output.
		{name: "chat > /dev/full", args: append([]string{"chat", "tiny"}, small...), stdin: "hi\n", stdout: full, code: 1, want: "standard output"},
		{name: "chat --json > /dev/full", args: append([]string{"chat", "tiny", "--json"}, small...), stdin: "hi\n", stdout: full, code: 1, want: "standard output"},
		{name: "synth --out - > /dev/full", args: []string{"synth", "--n", "1", "--out", "-"}, stdout: full, code: 1, want: "no space left"},
		{name: "info > /dev/full", args: []string{"info", "tiny"}, stdout: full, code: 1, want: "standard output"},
		{name: "model tiny --print-path > /dev/full", args: []string{"model", "tiny", "--print-path"}, stdout: full, code: 1, want: "standard output"},
		// Numeric flags out of range: exit 2 naming the flag, nothing run.
		{name: "generate --max-tokens -1", args: gen("--max-tokens", "-1"), code: 2, want: "--max-tokens must be >= 1", same: []string{filepath.Join(dir, "g.jsonl")}},
		{name: "generate --max-tokens 0", args: gen("--max-tokens", "0"), code: 2, want: "--max-tokens must be >= 1", same: []string{filepath.Join(dir, "g.jsonl")}},
		{name: "generate --max-plan-tokens -1", args: gen("--max-plan-tokens", "-1"), code: 2, want: "--max-plan-tokens must be >= 1"},
		{name: "generate --max-plan-tokens 0", args: gen("--max-plan-tokens", "0"), code: 2, want: "--max-plan-tokens must be >= 1"},
		{name: "extract --limit -1", args: []string{"extract", "tiny", "--input", in, "--output", "e.jsonl", "--limit", "-1"}, code: 2, want: "--limit must be >= 0",
			same: []string{filepath.Join(dir, "e.jsonl")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runHostileCase(t, dir, c) })
	}
	for _, dev := range []string{full, null} {
		if st, err := os.Stat(dev); err != nil || st.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("%s is no longer a device", dev)
		}
	}
}

// TestMergeDuringGenerate is the campaign's repro of lost rows: a merge
// onto the output of a running generate. It used to succeed, and the run
// then reported 300 rows written while the file held one. Now the merge
// fails naming the run, and every row of the run is in its file.
func TestMergeDuringGenerate(t *testing.T) {
	dir := t.TempDir()
	const n = 120
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "gout.jsonl")
	shard := filepath.Join(dir, "gshard.jsonl")
	os.WriteFile(shard, []byte(`{"id":"x","index":0,"answer":"a"}`+"\n"), 0o644)
	gen := exec.Command(os.Args[0], "-q", "generate", "tiny", "--threads", "1", "--parallel", "1", "--input", in, "--output", out,
		"--prompt-field", "question", "--max-plan-tokens", "16", "--max-tokens", "16")
	gen.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	var genErr bytes.Buffer
	gen.Stderr, gen.Stdout = &genErr, io.Discard
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gen.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for countLines(out) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	code, stderr := runChild(t, "merge", "--output", out, shard)
	werr := <-done
	if countLines(out) >= n && code == 0 {
		t.Fatal("generate finished before the merge ran; the test did not overlap them")
	}
	if code != 1 || !strings.Contains(stderr, "being written by another codeplan run (pid "+strconv.Itoa(gen.Process.Pid)+")") || crashTrace(stderr) {
		t.Errorf("merge onto a running generate's output: exit %d; stderr:\n%s", code, stderr)
	}
	if werr != nil {
		t.Fatalf("generate: %v\n%s", werr, genErr.String())
	}
	if got := len(readIDs(t, out)); got != n {
		t.Errorf("generate's output holds %d rows, want %d", got, n)
	}
}
