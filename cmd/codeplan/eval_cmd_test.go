package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// evalArgs runs eval on the tiny model with small limits: its answers are
// random bytes, so these tests check mechanics, not accuracy.
func evalArgs(out string, extra ...string) []string {
	args := []string{"codeplan", "-q", "eval", "tiny", "--out", out, "--max-plan-tokens", "8", "--max-tokens", "8",
		"--threads", "1", "--parallel", "3", "--ctx", "6144"}
	return append(args, extra...)
}

// evalRows reads results.jsonl as generic objects, so that the test sees
// the field names on disk.
func evalRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad results line %q: %v", line, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// checkEvalRows asserts one well-formed row per item and mode.
func checkEvalRows(t *testing.T, dir string, items int, modes ...string) []map[string]any {
	t.Helper()
	rows := evalRows(t, dir)
	fields := []string{"id", "item_id", "mode", "index", "question", "plan", "output", "extracted", "gold", "correct", "f1",
		"steps", "kind", "prompt_tokens", "plan_tokens", "answer_tokens", "seconds", "finish"}
	seen := map[string]int{}
	perMode := map[string]int{}
	for _, r := range rows {
		for _, f := range fields {
			if _, ok := r[f]; !ok {
				t.Errorf("row %v has no %q", r["id"], f)
			}
		}
		if r["id"] != r["item_id"].(string)+"|"+r["mode"].(string) {
			t.Errorf("row id %v for item %v in mode %v", r["id"], r["item_id"], r["mode"])
		}
		if r["mode"] != "direct" && r["plan_finish"] == nil {
			t.Errorf("%v: no plan_finish", r["id"])
		}
		seen[r["id"].(string)]++
		perMode[r["mode"].(string)]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s written %d times", id, n)
		}
	}
	for _, m := range modes {
		if perMode[m] != items {
			t.Errorf("%d rows in mode %s, want %d", perMode[m], m, items)
		}
	}
	if len(rows) != items*len(modes) {
		t.Errorf("%d rows, want %d items × %d modes", len(rows), items, len(modes))
	}
	return rows
}

func TestEvalSyntheticAllModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "eval")
	if code := run(evalArgs(dir, "--bench", "synth", "--steps", "1,2", "--n", "1")); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	checkEvalRows(t, dir, 10, "direct", "nlplan", "codeplan")
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# codeplan eval: synth", "| direct | 10 |", "| nlplan | 10 |", "| codeplan | 10 |",
		"95% CI", "Gain vs direct", "## Accuracy by number of steps", "| 2 |", "## Accuracy by task", "| truth |", "format: prompted"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	f, err := os.Open(filepath.Join(dir, "report.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("report.png: %v", err)
	}
	var sum struct {
		Rows  int `json:"rows"`
		Modes []struct {
			Mode string `json:"mode"`
		} `json:"modes"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(data, &sum); err != nil || sum.Rows != 30 || len(sum.Modes) != 3 || sum.Modes[0].Mode != "direct" {
		t.Errorf("summary.json (%v):\n%s", err, data)
	}
}

func TestEvalBenchmarkFile(t *testing.T) {
	dir := t.TempDir()
	bench := filepath.Join("..", "..", "evaluate", "testdata", "gsm8k_tiny.jsonl")
	if code := run(evalArgs(dir, "--bench", bench, "--modes", "direct,codeplan", "--format", "trained")); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	rows := checkEvalRows(t, dir, 4, "direct", "codeplan")
	golds := map[string]bool{}
	for _, r := range rows {
		if r["kind"] != "number" || r["format"] != "trained" {
			t.Errorf("row %v", r)
		}
		golds[r["gold"].(string)] = true
	}
	if !golds["7"] || !golds["10"] || !golds["60"] {
		t.Errorf("golds %v", golds)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "# codeplan eval: "+bench) || strings.Contains(string(md), "nlplan") {
		t.Errorf("report.md:\n%s", md)
	}
}

// TestEvalResumes stops after a few items (--limit), then reruns without
// it: every pair ends up in the results exactly once, and the report
// covers the whole benchmark, not only the second run.
func TestEvalResumes(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--bench", "synth-arith", "--steps", "1-3", "--n", "2"} // 6 items
	if code := run(evalArgs(dir, append(args, "--limit", "2")...)); code != 0 {
		t.Fatalf("first run: exit code %d", code)
	}
	checkEvalRows(t, dir, 2, "direct", "nlplan", "codeplan")
	// A torn last line, as kill -9 during a write leaves, is dropped and redone.
	f, err := os.OpenFile(filepath.Join(dir, "results.jsonl"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"synth-arith-k3-0001|dir`)
	f.Close()
	if code := run(evalArgs(dir, args...)); code != 0 {
		t.Fatalf("rerun: exit code %d", code)
	}
	checkEvalRows(t, dir, 6, "direct", "nlplan", "codeplan")
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "rows: 18 (6 items × 3 modes)") || !strings.Contains(string(md), "| codeplan | 6 |") {
		t.Errorf("report.md does not cover the whole benchmark:\n%s", md)
	}
	// The report can be rebuilt without a model.
	os.Remove(filepath.Join(dir, "report.md"))
	if code := run([]string{"codeplan", "-q", "eval", "--report-only", "--out", dir}); code != 0 {
		t.Fatalf("--report-only: exit code %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err != nil {
		t.Error(err)
	}
}

// TestEvalBadInput checks that bad flags and inputs fail before the model
// loads, with exit code 2 and a message that says what is wrong.
func TestEvalBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown mode", []string{"--bench", "synth", "--modes", "direct,think"}, `unknown mode "think"`},
		{"unknown bench name", []string{"--bench", "synth-arithm"}, `unknown benchmark "synth-arithm"`},
		{"missing file", []string{"--bench", filepath.Join(dir, "gsm8k.jsonl")}, "gsm8k.jsonl: no such file"},
		{"no bench", nil, "--bench is required"},
		{"bad format", []string{"--bench", "synth", "--format", "fancy"}, `unknown format "fancy"`},
		{"bad steps", []string{"--bench", "synth", "--steps", "0"}, "--steps"},
		{"steps out of range", []string{"--bench", "synth-order", "--steps", "12"}, "synth-order"},
		{"steps for a file", []string{"--bench", "../../evaluate/testdata/gsm8k_tiny.jsonl", "--steps", "2"}, "--steps does not apply"},
		{"kind for synth", []string{"--bench", "synth", "--kind", "number"}, "--kind does not apply"},
		{"bad kind", []string{"--bench", "../../evaluate/testdata/gsm8k_tiny.jsonl", "--kind", "essay"}, "--kind"},
		{"bad shard", []string{"--bench", "synth", "--shard", "4/3"}, "--shard"},
		{"report without results", []string{"--report-only"}, "no results in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--log-format", "console", "eval", "tiny", "--out", filepath.Join(dir, "out")}, tc.args...)
			code, stderr := runChild(t, args...)
			if code != 2 || crashTrace(stderr) {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
			if strings.Contains(stderr, "model ready") {
				t.Error("the model was loaded before the input was checked")
			}
		})
	}
}

func TestEvalLoglikScoring(t *testing.T) {
	dir := t.TempDir()
	bench := filepath.Join(dir, "mc.jsonl")
	os.WriteFile(bench, []byte(`{"id":"q1","question":"Which is a colour?","choices":["red","seven","walk"],"answer":"A"}
{"id":"q2","question":"Which is a number?","choices":["blue","seven","run fast"],"answer":"B"}
`), 0o644)
	if code := run(evalArgs(dir, "--bench", bench, "--modes", "direct,codeplan", "--mc-scoring", "loglik")); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	rows := checkEvalRows(t, dir, 2, "direct", "codeplan")
	for _, r := range rows {
		cs, ok := r["choice_scores"].(map[string]any)
		if r["scoring"] != "loglik" || !ok || len(cs["loglik"].([]any)) != 3 {
			t.Fatalf("row not scored by log-likelihood: %v", r)
		}
		best, bestV := -1, 0.0
		for i, v := range cs["loglik"].([]any) {
			if f := v.(float64); best < 0 || f > bestV {
				best, bestV = i, f
			}
		}
		if r["extracted"] != string(rune('A'+best)) {
			t.Errorf("picked %v, scores %v", r["extracted"], cs["loglik"])
		}
	}
	if code := run(evalArgs(t.TempDir(), "--bench", bench, "--mc-scoring", "vote")); code != exitUsage {
		t.Errorf("--mc-scoring vote: exit %d, want %d", code, exitUsage)
	}
}

// TestEvalFewShotAndLogSamples runs eval with the synthetic benchmark's own
// few-shot examples and --log-samples: every row records its prompt, which
// holds two worked examples in the row's mode (a code plan in codeplan
// mode, none in direct), and summary.json records the run's settings.
func TestEvalFewShotAndLogSamples(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ev")
	code, _, stderr := runCLI(t, "-q", "eval", "tiny", "--bench", "synth-arith", "--steps", "1,2", "--n", "1",
		"--modes", "direct,codeplan", "--fewshot", "2", "--log-samples", "--max-plan-tokens", "4", "--max-tokens", "4",
		"--threads", "1", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 2 items × 2 modes", len(rows))
	}
	for _, r := range rows {
		prompt := gjson.Get(r, "prompt").String()
		mode := gjson.Get(r, "mode").String()
		if n := strings.Count(prompt, "The answer is"); n < 2 {
			t.Errorf("%s row: %d worked responses in the prompt, want 2:\n%s", mode, n, prompt)
		}
		if hasPlan := strings.Contains(prompt, "def solve"); hasPlan != (mode == "codeplan") {
			t.Errorf("%s row: code plan in the examples = %v", mode, hasPlan)
		}
		if gjson.Get(r, "run.fewshot").String() == "" {
			t.Errorf("the run key does not record the few-shot setting: %s", r)
		}
	}
	sum, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !gjson.GetBytes(sum, "meta.codeplan").Exists() || gjson.GetBytes(sum, "meta.runs.0.model_fingerprint").String() == "" ||
		gjson.GetBytes(sum, "meta.llama_cpp").String() != "ec98e2002" {
		t.Errorf("summary.json meta: %s", gjson.GetBytes(sum, "meta").Raw)
	}
	if code, _, stderr := runCLI(t, "-q", "eval", "tiny", "--bench", filepath.Join(out, "results.jsonl"), "--fewshot", "1", "--out", out+"2"); code != exitUsage || !strings.Contains(stderr, "--fewshot-file") {
		t.Errorf("--fewshot on a file without --fewshot-file: exit %d\n%s", code, stderr)
	}
}
