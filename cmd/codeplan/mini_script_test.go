package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMiniReplicationScript runs scripts/mini-replication.sh at a
// seconds-long size (hops and branch, two step counts, a trained tokenizer,
// a one-layer model, a few training steps, a few items) to check the
// mechanics: every stage runs (the pilot, the four arms, the learning-curve
// snapshots and the extractor included), the reports are written, a rerun
// skips every stage, a rerun with other settings is refused, and a pilot
// below its gate stops the run with exit status 3 before the arms. The test
// binary stands in for codeplan (CODEPLAN_TEST_MAIN, see TestMain).
func TestMiniReplicationScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole recipe at toy size")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	out := filepath.Join(t.TempDir(), "mini")
	env := append(os.Environ(),
		"CODEPLAN="+os.Args[0], "CODEPLAN_TEST_MAIN=1",
		"KINDS=hops,branch", "STEPS=1-2", "N_TRAIN=3", "N_VAL=2", "N_TEST=2", "VOCAB=1024",
		"LAYERS=1", "EMBD=32", "HEADS=2", "FF=64", "CTX=256", "EPOCHS=1", "BATCH=256", "SNAPSHOTS=2",
		"PILOT_ROWS=4", "PILOT_GATE=0",
		"MAX_PLAN_TOKENS=8", "MAX_TOKENS=8", "PARALLEL=4", "THREADS=1",
		"EXTRACTOR=1", "EXTRACTOR_EVERY=2", "EXTRACTOR_CTX=1024",
	)
	var runIn func(out string, extra ...string) (string, error)
	run := func(extra ...string) (string, error) {
		return runIn(out, extra...)
	}
	runIn = func(out string, extra ...string) (string, error) {
		cmd := exec.Command("bash", "../../scripts/mini-replication.sh", out)
		cmd.Env = append(append([]string(nil), env...), extra...)
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				cmd.Process.Kill()
			}
		}()
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	log, err := run()
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, log)
	}
	stages := []string{"data-train", "data-val", "data-test", "tokenizer", "init",
		"data-pilot", "train-pilot", "eval-val-pilot",
		"train-direct", "train-nlplan", "train-codeplan", "train-control",
		"eval-test-direct", "eval-test-nlplan", "eval-test-codeplan", "eval-test-control",
		"eval-val-direct.at50", "eval-val-codeplan.at50", "eval-val-control.at50", "eval-val-direct", "eval-val-control",
		"data-extractor", "init-extractor", "train-extractor", "eval-test-extractor"}
	for _, s := range stages {
		if _, err := os.Stat(filepath.Join(out, ".done-"+s)); err != nil {
			t.Errorf("stage %s did not finish: %v", s, err)
		}
		if !strings.Contains(log, "done "+s) {
			t.Errorf("no progress line for stage %s", s)
		}
	}
	for _, f := range []string{"init.gguf", "models/direct.gguf", "models/nlplan.gguf", "models/codeplan.gguf",
		"models/control.gguf", "models/codeplan.at50.gguf", "tokenizer/tokenizer.json",
		"report-test/compare.md", "report-test/compare.json", "report-test/report.md", "report-test/accuracy_by_k.png", "report-test/summary.json", "recipe.env", "times.tsv",
		"models/extractor.gguf", "extractor.env", "extractor-test.txt", "extractor-test.json"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	var sum struct {
		Modes []string `json:"modes"`
		Cells []struct {
			Mode, Task string
			K, N       int
		} `json:"cells"`
	}
	b, err := os.ReadFile(filepath.Join(out, "report-test", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if strings.Join(sum.Modes, ",") != "direct,nlplan,codeplan" { // the control is in compare.md
		t.Errorf("report modes %v", sum.Modes)
	}
	// The paired comparison covers the four arms, every pair, and the curves.
	var cmp struct {
		Items    int                            `json:"items"`
		Accuracy map[string][]struct{ N int }   `json:"accuracy"`
		Pairs    []struct{ A, B string }        `json:"pairs"`
		Curves   map[string][]struct{ Pct int } `json:"curves"`
		Baseline *struct{ Tokens int }          `json:"baseline"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "report-test", "compare.json")); err != nil || json.Unmarshal(b, &cmp) != nil {
		t.Fatalf("compare.json: %v", err)
	}
	if cmp.Items != 8 || len(cmp.Accuracy) != 4 || len(cmp.Pairs) != 6*3 || len(cmp.Curves["control"]) != 2 ||
		cmp.Baseline == nil || cmp.Baseline.Tokens == 0 {
		t.Errorf("compare.json: %d items, %d arms, %d pairs, curves %v, baseline %v", cmp.Items, len(cmp.Accuracy), len(cmp.Pairs), cmp.Curves, cmp.Baseline)
	}
	// Every mode saw every test item: 2 families x 2 k x 2 items.
	for _, c := range sum.Cells {
		if c.Task == "all" && c.K == 0 && c.N != 8 {
			t.Errorf("mode %s evaluated %d items, want 8", c.Mode, c.N)
		}
	}
	// The three models start from the same init but learn different text.
	d, _ := os.ReadFile(filepath.Join(out, "models/direct.gguf"))
	c, _ := os.ReadFile(filepath.Join(out, "models/codeplan.gguf"))
	if len(d) == 0 || string(d) == string(c) {
		t.Error("direct and codeplan models are identical (or missing)")
	}

	// The extractor was judged on every test row, each with its reference plan.
	var xs struct {
		Processed     int64 `json:"processed"`
		ReferenceRows int64 `json:"reference_rows"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "extractor-test.json")); err != nil || json.Unmarshal(b, &xs) != nil {
		t.Errorf("extractor summary: %v %s", err, b)
	} else if xs.Processed != 8 || xs.ReferenceRows != 8 {
		t.Errorf("extractor summary: %d rows processed, %d with a reference; want 8 and 8", xs.Processed, xs.ReferenceRows)
	}

	// A rerun skips every stage.
	log, err = run()
	if err != nil {
		t.Fatalf("rerun failed: %v\n%s", err, log)
	}
	for _, s := range stages {
		if !strings.Contains(log, "skip "+s+" (done)") {
			t.Errorf("rerun did not skip %s:\n%s", s, log)
		}
	}
	// Other settings in the same folder are refused, exit status 2.
	for _, changed := range []string{"LR=0.5", "EXTRACTOR_EPOCHS=3", "EXTRACTOR_LR=0.5", "VOCAB=800"} {
		log, err = run(changed)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(log, "other settings") {
			t.Errorf("changed recipe (%s): err %v, output:\n%s", changed, err, log)
		}
	}
	// A pilot below its gate stops before the arms, exit status 3.
	gated := filepath.Join(t.TempDir(), "gated")
	log, err = runIn(gated, "PILOT_GATE=1.01", "EXTRACTOR=0")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(log, "pilot below the gate") {
		t.Errorf("pilot gate: err %v, output:\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(gated, ".done-train-direct")); err == nil {
		t.Error("an arm was trained although the pilot missed its gate")
	}

	// A pilot on every training row is the direct arm: trained once (with
	// its snapshots), judged as the pilot, then skipped among the arms.
	full := filepath.Join(t.TempDir(), "full")
	log, err = runIn(full, "PILOT_ROWS=1000", "EXTRACTOR=0", "MODES=direct codeplan")
	if err != nil {
		t.Fatalf("full-size pilot: %v\n%s", err, log)
	}
	if !strings.Contains(log, "it is the direct arm") || strings.Count(log, "start train-direct") != 1 ||
		!strings.Contains(log, "skip train-direct (done)") || !strings.Contains(log, "done eval-val-pilot") {
		t.Errorf("full-size pilot did not stand in for the direct arm:\n%s", log)
	}
	p, _ := os.ReadFile(filepath.Join(full, "models/pilot.gguf"))
	d, _ = os.ReadFile(filepath.Join(full, "models/direct.gguf"))
	if len(p) == 0 || string(p) != string(d) {
		t.Error("the full-size pilot's model is not the direct arm's")
	}
	if _, err := os.Stat(filepath.Join(full, "models/direct.at50.gguf")); err != nil {
		t.Errorf("the full-size pilot lost the direct arm's snapshots: %v", err)
	}
}
