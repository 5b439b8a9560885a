package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crashMarks are what a Go or C crash prints. Go exits with 2 on a fatal
// signal, the same code as a usage error, so the code alone proves nothing.
var crashMarks = []string{"goroutine ", "SIGSEGV", "SIGABRT", "panic:", "fatal error:", "GGML_ASSERT"}

// runHostileChild runs the CLI as a child process (see TestMain) so that a crash
// shows up as a crash trace instead of killing the test binary.
func runHostileChild(t *testing.T, dir, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-q"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CODEPLAN_TEST_MAIN=1"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("%v: %v", args, err)
	return 0, ""
}

// TestHostileInputs is issue 9's campaign (the crash, validation and
// security items) as a table: every bad input gets its exit code and a
// message naming what was wrong, and nothing crashes. Before the fixes the
// long runs segfaulted in llama_tokenize, NaN temperature aborted in
// cp_sample, q8_0 with flash attention aborted in ggml, and the flag values
// were accepted silently.
func TestHostileInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rows ...map[string]string) string {
		var b strings.Builder
		for _, r := range rows {
			line, _ := json.Marshal(r)
			b.Write(append(line, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	ok := map[string]string{"id": "ok", "prompt": "What is 2+2?", "response": "4", "plan": "x = 2 + 2"}
	longA := map[string]string{"id": "longA", "prompt": strings.Repeat("A", 40_000), "response": "4", "plan": "x = 2"}
	longSp := map[string]string{"id": "longSp", "prompt": "a" + strings.Repeat(" ", 400_000) + "b", "response": "4", "plan": "x = 2"}
	rows := write("rows.jsonl", ok, longA, longSp)
	bench := write("bench.jsonl", map[string]string{"question": "What is 2+2?", "answer": "4"},
		map[string]string{"question": strings.Repeat("=", 40_000), "answer": "4"})
	small := []string{"--threads", "1", "--max-tokens", "4", "--max-plan-tokens", "4"}
	gen := func(extra ...string) []string {
		return append(append([]string{"generate", "tiny", "--input", rows, "--output", "g.jsonl"}, small...), extra...)
	}

	cases := []struct {
		name  string
		args  []string
		stdin string
		env   []string
		code  int
		want  []string // in the combined output
	}{
		// Item 2: sampling and flag values, checked before anything loads.
		{"temperature NaN", gen("--temperature", "NaN"), "", nil, 2, []string{"--temperature", "NaN"}},
		{"temperature Inf", gen("--temperature", "Inf"), "", nil, 2, []string{"--temperature", "+Inf"}},
		{"top-p 7", []string{"extract", "tiny", "--input", rows, "--output", "e.jsonl", "--top-p", "7"}, "", nil, 2, []string{"--top-p", "[0, 1]"}},
		{"top-k -1", gen("--top-k", "-1"), "", nil, 2, []string{"--top-k", "-1"}},
		{"min-p 2", []string{"eval", "tiny", "--bench", bench, "--out", "ev0", "--min-p", "2"}, "", nil, 2, []string{"--min-p"}},
		{"repeat-penalty NaN", gen("--repeat-penalty", "NaN"), "", nil, 2, []string{"--repeat-penalty"}},
		{"chat temperature NaN", []string{"chat", "tiny", "--temperature", "NaN"}, "hi\n", nil, 2, []string{"--temperature"}},
		{"serve temperature NaN", []string{"serve", "tiny", "--temperature", "NaN"}, "", nil, 2, []string{"--temperature"}},
		{"lora-scale NaN", gen("--lora-scale", "NaN"), "", nil, 2, []string{"--lora-scale"}},
		{"lora-scale huge", gen("--lora-scale", "1e30"), "", nil, 2, []string{"--lora-scale"}},
		{"max-grad-norm NaN", []string{"finetune", "tiny", "--data", rows, "--out", "a.gguf", "--max-grad-norm", "NaN"}, "", nil, 2, []string{"--max-grad-norm"}},
		{"parallel 0", gen("--parallel", "0"), "", nil, 2, []string{"--parallel", ">= 1"}},
		{"ctx -1", gen("--ctx", "-1"), "", nil, 2, []string{"--ctx"}},
		{"threads -3", gen("--threads", "-3"), "", nil, 2, []string{"--threads", "-3"}},
		{"batch 0", gen("--batch", "0"), "", nil, 2, []string{"--batch"}},
		{"serve parallel 0", []string{"serve", "tiny", "--parallel", "0"}, "", nil, 2, []string{"--parallel"}},
		// Item 4: KV cache settings that aborted in ggml.
		{"q8_0 with flash attention", gen("--cache-type", "q8_0", "--flash-attn", "on"), "", nil, 2, []string{"--cache-type q8_0", "--flash-attn on", "head size 16"}},
		{"q8_0 without flash attention", gen("--cache-type", "q8_0"), "", nil, 2, []string{"--cache-type q8_0", "--flash-attn on"}},
		{"unknown cache type", gen("--cache-type", "q3"), "", nil, 2, []string{"--cache-type"}},
		{"bad flash-attn", gen("--flash-attn", "maybe"), "", nil, 2, []string{"--flash-attn"}},
		// Item 10: serve authentication.
		{"empty api key", []string{"serve", "tiny", "--api-key="}, "", nil, 2, []string{"--api-key", "empty"}},
		{"empty api key env", []string{"serve", "tiny"}, "", []string{"CODEPLAN_API_KEY="}, 2, []string{"CODEPLAN_API_KEY", "empty"}},
		{"public host without key", []string{"serve", "tiny", "--host", "0.0.0.0"}, "", nil, 2, []string{"--host 0.0.0.0", "--insecure-no-auth"}},
		// With --insecure-no-auth the auth check passes; the bad port
		// stops the server before it listens.
		{"public host insecure", []string{"serve", "tiny", "--host", "0.0.0.0", "--insecure-no-auth", "--port", "70000"}, "", nil, 2, []string{"--port", "0..65535", "70000"}},
		// Item 1: long runs of one character in every command that
		// tokenizes; each row gets its error and the rest run.
		{"extract long runs", []string{"extract", "tiny", "--input", rows, "--output", "e.jsonl", "--threads", "1"}, "", nil, 0, []string{"prompt_too_long             2"}},
		{"generate long runs", gen(), "", nil, 0, []string{"written 3"}},
		{"eval long run", append([]string{"eval", "tiny", "--bench", bench, "--out", "ev", "--modes", "direct"}, small...), "", nil, 0, []string{"1 could not run (prompt too long"}},
		{"chat long run", append([]string{"chat", "tiny"}, small...), strings.Repeat("A", 40_000) + "\nhi\n", nil, 1, []string{"does not fit in the context", "Plan:"}},
		{"chat beyond the tokenizer", append([]string{"chat", "tiny"}, small...), strings.Repeat("A", 1_100_000) + "\n", nil, 1, []string{"does not fit in the context", "too long to tokenize"}},
		{"finetune long runs", []string{"finetune", "tiny", "--data", rows, "--out", "ft.gguf", "--epochs", "1", "--ctx", "128", "--batch", "128", "--threads", "1", "--val-split", "0"}, "", nil, 0, []string{"row longA skipped", "row longSp skipped", "adapter"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runHostileChild(t, dir, c.stdin, c.env, c.args...)
			for _, mark := range crashMarks {
				if strings.Contains(out, mark) {
					t.Fatalf("crashed (%q in output), exit %d:\n%s", mark, code, tailOf(out))
				}
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d:\n%s", code, c.code, tailOf(out))
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, tailOf(out))
				}
			}
		})
	}
	// generate wrote each long row with its error, and the good row ran.
	data, err := os.ReadFile(filepath.Join(dir, "g.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "prompt does not fit in the context"); n != 2 {
		t.Errorf("generate output has %d too-long errors, want 2", n)
	}
}

func tailOf(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
