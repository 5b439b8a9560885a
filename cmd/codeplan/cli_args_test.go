package main

import (
	"encoding/csv"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// checkUsage runs args as a child and checks exit 2, every wanted text in
// stderr, and no crash trace.
func checkUsage(t *testing.T, args []string, want ...string) string {
	t.Helper()
	code, _, stderr := runCLI(t, args...)
	stderr = strings.ReplaceAll(stderr, `\"`, `"`) // JSON log lines escape quotes
	if code != exitUsage || crashTrace(stderr) {
		t.Errorf("%v: exit %d, want %d:\n%s", args, code, exitUsage, stderr)
		return stderr
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%v: stderr lacks %q:\n%s", args, w, stderr)
		}
	}
	return stderr
}

// TestExtraArgumentsRefused checks that positional arguments a command
// does not take are refused instead of ignored, that a MODEL argument and
// a different --model are refused, and that info describes each file it is
// given.
func TestExtraArgumentsRefused(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t, dir, 2)
	out := filepath.Join(dir, "o.jsonl")
	checkUsage(t, []string{"extract", "tiny", "extra", "--input", corpus, "--output", out}, `unexpected extra argument "extra"`, "MODEL.gguf")
	checkUsage(t, []string{"generate", "tiny", "a", "b", "--input", corpus, "--output", out}, `unexpected extra arguments "a", "b"`)
	checkUsage(t, []string{"synth", "stray", "--output", filepath.Join(dir, "s.jsonl")}, "synth takes no positional arguments", `"stray"`)
	checkUsage(t, []string{"model", "tiny", "stray"}, "model tiny takes no positional arguments")
	checkUsage(t, []string{"generate", "tiny", "--model", filepath.Join(dir, "other.gguf"), "--input", corpus, "--output", out},
		`the model is given twice, as the first argument "tiny" and as --model`)
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command created its output")
	}
	// The same model both ways is no conflict.
	if code, _, stderr := runCLI(t, "-q", "info", "tiny", "--model", "tiny"); code != 0 {
		t.Errorf("info tiny --model tiny: exit %d: %s", code, stderr)
	}
	// info takes several files and describes each.
	code, stdout, stderr := runCLI(t, "-q", "info", "tiny", "tiny")
	if code != 0 || strings.Count(stdout, "architecture:") != 2 {
		t.Errorf("info tiny tiny: exit %d, %d descriptions:\n%s%s", code, strings.Count(stdout, "architecture:"), stdout, stderr)
	}
}

// TestMistypedCommand checks that an unknown command is a usage error (it
// was urfave/cli's "No help topic", exit 3) that suggests the nearest one.
func TestMistypedCommand(t *testing.T) {
	checkUsage(t, []string{"extrct", "tiny"}, `unknown command "extrct": did you mean "extract"?`)
	checkUsage(t, []string{"fientune"}, `did you mean "finetune"?`)
	checkUsage(t, []string{"model", "tni"}, `unknown command "model tni": did you mean "model tiny"?`)
	checkUsage(t, []string{"help", "extrct"}, `unknown command "extrct": did you mean "extract"?`)
	for _, args := range [][]string{{"extract", "help"}, {"help", "extract"}, {"model", "help"}} {
		if code, stdout, stderr := runCLI(t, args...); code != 0 || !strings.Contains(stdout, "USAGE") {
			t.Errorf("%v: exit %d, want the help:\n%s%s", args, code, stdout, stderr)
		}
	}
	stderr := checkUsage(t, []string{"qqqqqqqq"}, `unknown command "qqqqqqqq"`)
	if strings.Contains(stderr, "did you mean") {
		t.Errorf("a suggestion for a name close to nothing:\n%s", stderr)
	}
	if code, stdout, _ := runCLI(t); code != 0 || !strings.Contains(stdout, "COMMANDS") {
		t.Errorf("no command: exit %d, want the help:\n%s", code, stdout)
	}
	for _, tc := range []struct {
		in, want string
	}{{"extrct", "extract"}, {"extarct", "extract"}, {"evl", "eval"}, {"merg", "merge"}, {"perplex", "perplexity"}, {"xyzzy", ""}} {
		if got := nearest(tc.in, []string{"extract", "eval", "merge", "perplexity", "info", "serve"}); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestChecksBeforeModelLoads checks what is found without loading the
// model: a missing --lora, an adapter given as the model, a port in use,
// and a malformed row deep in extract's input. The model never loads
// ("model ready" is not logged) and nothing crashes.
func TestChecksBeforeModelLoads(t *testing.T) {
	dir := t.TempDir()
	adapter := filepath.Join(dir, "ad.gguf")
	w := gguf.NewLoRAWriter("llama", "test-lora", 16)
	w.SetString(finetune.KeyBaseFile, "base.gguf")
	if err := w.AddF32("blk.0.attn_q.weight.lora_a", []uint64{4, 2}, make([]float32, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(adapter); err != nil {
		t.Fatal(err)
	}
	corpus := writeCorpus(t, dir, 3)
	bad := filepath.Join(dir, "bad.jsonl")
	data, _ := os.ReadFile(corpus)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(bad, []byte(lines[0]+lines[1]+"{not json\n"), 0o644)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"chat", "tiny", "--lora", filepath.Join(dir, "missing.gguf")}, []string{"--lora", "missing.gguf: no such file"}},
		{[]string{"generate", "tiny", "--lora", corpus, "--input", corpus, "--output", filepath.Join(dir, "g.jsonl")}, []string{"--lora " + corpus + ": not a GGUF file"}},
		{[]string{"generate", adapter, "--input", corpus, "--output", filepath.Join(dir, "g.jsonl")},
			[]string{"is a LoRA adapter, not a model", "base.gguf", "--lora " + adapter}},
		{[]string{"serve", "tiny", "--port", port}, []string{"--host/--port", port}},
		{[]string{"extract", "tiny", "--input", bad, "--output", filepath.Join(dir, "e.jsonl")}, []string{"bad.jsonl:3"}},
		{[]string{"generate", "tiny", "--input", bad, "--output", filepath.Join(dir, "g2.jsonl")}, []string{"bad.jsonl:3"}},
	} {
		stderr := checkUsage(t, tc.args, tc.want...)
		if strings.Contains(stderr, "model ready") {
			t.Errorf("%v: the model was loaded before the error:\n%s", tc.args, stderr)
		}
	}
	for _, p := range []string{"e.jsonl", "g.jsonl", "g2.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was created by a refused run", p)
		}
	}
}

// TestWordLimits checks --min-words and --max-words: 0 and -1 turn a check
// off, other negatives and a minimum above the maximum are refused, and
// --min-gain's help says the filter is off by default.
func TestWordLimits(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t, dir, 2)
	args := func(extra ...string) []string {
		return append([]string{"extract", "tiny", "--input", corpus, "--output", filepath.Join(dir, "o.jsonl"),
			"--threads", "1", "--max-plan-tokens", "4", "--predict=false"}, extra...)
	}
	checkUsage(t, args("--min-words", "300", "--max-words", "10"), "--min-words 300 is more than --max-words 10")
	checkUsage(t, args("--max-words", "-5"), "--max-words must be >= -1 (0 or -1 = no limit), got -5")
	for _, off := range []string{"0", "-1"} {
		out := filepath.Join(dir, "off"+off+".jsonl")
		a := args("--max-words", off, "--min-words", off)
		a[5] = out
		if code, _, stderr := runCLI(t, append([]string{"-q"}, a...)...); code != 0 {
			t.Fatalf("--max-words %s: exit %d: %s", off, code, stderr)
		}
		rej, err := os.ReadFile(strings.TrimSuffix(out, ".jsonl") + ".rejects.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		// Both spellings of "off" are recorded alike, so either resumes the other.
		if !strings.Contains(string(rej), `"max_words":"-1"`) || !strings.Contains(string(rej), `"min_words":"-1"`) {
			t.Errorf("--max-words %s: run settings do not say the limits are off:\n%s", off, rej)
		}
	}
	_, stdout, _ := runCLI(t, "extract", "--help")
	if i := strings.Index(stdout, "--min-gain"); i < 0 || !strings.Contains(stdout[i:i+400], "default: off") {
		t.Errorf("--min-gain help does not say it is off by default:\n%s", stdout)
	}
}

// TestFlagAliases checks the one flag vocabulary: --input/--output
// everywhere, the older --data/--out still accepted.
func TestFlagAliases(t *testing.T) {
	dir := t.TempDir()
	var got []string
	for _, flag := range []string{"--output", "--out", "-o"} {
		p := filepath.Join(dir, "s"+strings.TrimLeft(flag, "-")+".jsonl")
		if code, _, stderr := runCLI(t, "-q", "synth", "--kinds", "arith", "--steps", "1", "--n", "2", flag, p); code != 0 {
			t.Fatalf("synth %s: exit %d: %s", flag, code, stderr)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	if got[0] != got[1] || got[1] != got[2] || got[0] == "" {
		t.Error("synth wrote different rows through --output, --out and -o")
	}
	rows := copyTrainingRows(t, dir)
	for _, io := range [][2]string{{"--input", "--output"}, {"--data", "--out"}} {
		out := filepath.Join(dir, "ad"+strings.TrimLeft(io[0], "-")+".gguf")
		if code, _, stderr := runCLI(t, "-q", "finetune", "tiny", io[0], rows, io[1], out, "--epochs", "1", "--lora-rank", "2",
			"--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0"); code != 0 {
			t.Fatalf("finetune %s %s: exit %d: %s", io[0], io[1], code, stderr)
		}
		if _, err := os.Stat(out); err != nil {
			t.Error(err)
		}
	}
	checkUsage(t, []string{"finetune", "tiny", "--output", filepath.Join(dir, "x.gguf")}, "--input")
}

// TestChatSamplingFlags checks that chat takes --top-k, --min-p and
// --repeat-penalty like generate, checked before the model loads.
func TestChatSamplingFlags(t *testing.T) {
	stdout, stderr, err := runChatScript(t, "Hi\n", "--top-k", "5", "--min-p", "0.05", "--repeat-penalty", "1.1", "--temperature", "0.7", "--seed", "3")
	if err != nil || !strings.Contains(stdout, "Answer:") {
		t.Fatalf("chat with sampling flags: %v\n%s\n%s", err, stdout, stderr)
	}
	checkUsage(t, []string{"chat", "tiny", "--top-k", "-1"}, "--top-k")
	checkUsage(t, []string{"chat", "tiny", "--min-p", "2"}, "--min-p")
}

// firstLoss is the loss of the first step in a finetune step log.
func firstLoss(t *testing.T, logPath string) float64 {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("%s: %v (%d records)", logPath, err, len(recs))
	}
	col := -1
	for i, h := range recs[0] {
		if h == "loss" {
			col = i
		}
	}
	v, err := strconv.ParseFloat(recs[1][col], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFinetuneContinuesAdapter checks `finetune --lora PATH`: training
// continues from that adapter (its first loss is where the first run
// ended, far below a fresh adapter's), with its rank; flags that would
// change the adapter's shape, writing over it, and --full are refused; a
// bare --lora still trains a new adapter.
func TestFinetuneContinuesAdapter(t *testing.T) {
	dir := t.TempDir()
	rows := copyTrainingRows(t, dir)
	common := []string{"--epochs", "3", "--lr", "1e-2", "--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0"}
	first := filepath.Join(dir, "first.gguf")
	if code, _, stderr := runCLI(t, append([]string{"-q", "finetune", "tiny", "--lora", "--input", rows, "--output", first, "--lora-rank", "4"}, common...)...); code != 0 {
		t.Fatalf("first run (bare --lora): exit %d: %s", code, stderr)
	}
	second := filepath.Join(dir, "second.gguf")
	if code, _, stderr := runCLI(t, append([]string{"-q", "finetune", "tiny", "--lora", first, "--input", rows, "--output", second}, common...)...); code != 0 {
		t.Fatalf("continued run: exit %d: %s", code, stderr)
	}
	fresh, cont := firstLoss(t, filepath.Join(dir, "first.log.csv")), firstLoss(t, filepath.Join(dir, "second.log.csv"))
	if !(cont < fresh-0.5) {
		t.Errorf("continued run starts at loss %.3f, a fresh adapter at %.3f: the adapter was not continued", cont, fresh)
	}
	info, err := finetune.ReadAdapterInfo(second)
	if err != nil || info.Rank != 4 {
		t.Errorf("continued adapter: rank %d, %v; want the first adapter's 4", info.Rank, err)
	}
	checkUsage(t, append([]string{"finetune", "tiny", "--lora", first, "--lora-rank", "8", "--input", rows, "--output", filepath.Join(dir, "x.gguf")}, common...),
		"--lora-rank does not apply with --lora")
	checkUsage(t, append([]string{"finetune", "tiny", "--lora", first, "--input", rows, "--output", first}, common...),
		"is the adapter being continued")
	checkUsage(t, append([]string{"finetune", "tiny", "--lora", filepath.Join(dir, "none.gguf"), "--input", rows, "--output", filepath.Join(dir, "y.gguf")}, common...),
		"none.gguf: no such file")
}

// TestDrainTimeoutBoundsTheWait checks interruptContexts: the first
// SIGTERM cancels the soft context at once and, with a drain bound, the
// hard one when it is over (generate once waited 237 s for its rows in
// flight past a `timeout 120`); without one only a second signal does.
func TestDrainTimeoutBoundsTheWait(t *testing.T) {
	for _, drain := range []time.Duration{200 * time.Millisecond, 0} {
		soft, hard, stop := interruptContexts(drain)
		start := time.Now()
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case <-soft.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("drain %v: SIGTERM did not stop the feeding", drain)
		}
		select {
		case <-hard.Done():
			if drain == 0 {
				t.Error("without --drain-timeout the rows in flight were stopped")
			} else if waited := time.Since(start); waited < drain {
				t.Errorf("stopped after %v, before the %v drain", waited, drain)
			}
		case <-time.After(drain + 2*time.Second):
			if drain > 0 {
				t.Errorf("drain %v: the rows in flight were never stopped", drain)
			}
		}
		stop()
	}
}
