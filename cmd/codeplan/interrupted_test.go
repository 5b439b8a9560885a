package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptedStatus: every command stopped by SIGINT or SIGTERM before
// it finished exits with the one interrupted status (130), never 0, and
// without a crash trace: those that stop cleanly (generate, eval,
// finetune, and perplexity once its model is loaded) after saving their
// work, the others at once.
// extract is TestExtractInterruptFinishesCleanly and the Slurm and
// Kubernetes tests; serve is TestServeSecondSignalStopsAtOnce.
func TestInterruptedStatus(t *testing.T) {
	dir := t.TempDir()
	in := writeCorpus(t, dir, 400)
	ftData, err := filepath.Abs("../../finetune/testdata/rows.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		sig   syscall.Signal
		grows string // the command is under way once this file has 2 lines
		want  string
	}{
		{"generate SIGTERM", []string{"generate", "tiny", "--input", in, "--output", "g.jsonl", "--threads", "1", "--parallel", "1", "--max-tokens", "16", "--max-plan-tokens", "16"},
			syscall.SIGTERM, "g.jsonl", "generate interrupted: rerun the same command to resume"},
		{"eval SIGINT", []string{"eval", "tiny", "--bench", "synth-arith", "--steps", "1-4", "--n", "50", "--threads", "1", "--parallel", "1", "--max-tokens", "16", "--out", "ev"},
			syscall.SIGINT, "ev/results.jsonl", "eval interrupted"},
		{"finetune SIGTERM", []string{"finetune", "tiny", "--data", ftData, "--out", "a.gguf", "--epochs", "400", "--threads", "1", "--ctx", "256", "--batch", "512", "--lr", "1e-3"},
			syscall.SIGTERM, "a.log.csv", "rerun with --resume"},
		// Rows come from a pipe that stays open: the run is under way,
		// waiting for more, when the signal comes.
		{"perplexity SIGTERM", []string{"perplexity", "tiny", "--input", "-", "--threads", "1", "--text-field", "question", "--output", "p.jsonl"},
			syscall.SIGTERM, "", "rerun the same command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"-q"}, c.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdin.Write([]byte(`{"question":"What is 2+2?"}` + "\n" + `{"question":"And 3+3?"}` + "\n"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			deadline := time.After(2 * time.Minute)
			if c.grows == "" {
				time.Sleep(1500 * time.Millisecond)
			}
			for c.grows != "" && countLines(filepath.Join(dir, c.grows)) < 2 {
				select {
				case <-done:
					t.Fatalf("finished before the signal:\n%s", tailOf(out.String()))
				case <-deadline:
					cmd.Process.Kill()
					t.Fatalf("no progress in 2 minutes:\n%s", tailOf(out.String()))
				case <-time.After(20 * time.Millisecond):
				}
			}
			cmd.Process.Signal(c.sig)
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatalf("still running 2 minutes after %v", c.sig)
			}
			code := cmd.ProcessState.ExitCode()
			if code != exitInterrupted || !strings.Contains(out.String(), c.want) {
				t.Errorf("exit %d after %v, want %d with %q:\n%s", code, c.sig, exitInterrupted, c.want, tailOf(out.String()))
			}
			for _, mark := range crashMarks {
				if strings.Contains(out.String(), mark) {
					t.Errorf("crash trace %q:\n%s", mark, tailOf(out.String()))
				}
			}
		})
	}
}
