package report

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/evaluate/evaltest"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// scripted answers like a model that is always right in direct mode, never
// in nlplan mode, and right in codeplan mode except for truth puzzles.
type scripted struct{ gold map[string]string }

func (s scripted) Generate(_ context.Context, req lm.Request) (lm.Result, error) {
	return evaltest.Answer(s.gold, req), nil
}

// evalRun runs eval on 10 synthetic items (two step counts) with the
// scripted model and returns the report folder.
func evalRun(t *testing.T) string {
	t.Helper()
	loaded, err := evaluate.LoadItems(evaluate.Source{Bench: "synth", Steps: []int{1, 3}, PerCell: 1})
	if err != nil {
		t.Fatal(err)
	}
	gen := scripted{gold: map[string]string{}}
	for _, it := range loaded.Items {
		gen.gold[it.ID] = it.Gold
	}
	cfg := evaluate.Config{
		Items: loaded.Items, Modes: planner.Modes(), Dir: t.TempDir(), Workers: 3,
		Prompter: planner.Prompter{Format: planner.Prompted, Chat: planner.ChatML{}},
		Settings: inference.Settings{MaxPlanTokens: 16, MaxTokens: 16},
		Model:    "fake.gguf", Logger: zerolog.Nop(),
	}
	if st, err := evaluate.Run(context.Background(), context.Background(), gen, cfg); err != nil || st.Written != 30 {
		t.Fatalf("eval run: %+v, %v", st, err)
	}
	return cfg.Dir
}

// TestBuildReportOfAnEvalRun checks the report files built from the rows
// of an eval run: report.md, summary.json and report.png.
func TestBuildReportOfAnEvalRun(t *testing.T) {
	dir := evalRun(t)
	rep, err := BuildReport(dir, "synth")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 30 || rep.Items != 10 || len(rep.Summary.Modes) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []struct {
		mode string
		acc  float64
	}{{"direct", 1}, {"nlplan", 0}, {"codeplan", 0.8}} {
		m := rep.Summary.Modes[i]
		if m.Mode != want.mode || m.Accuracy != want.acc || m.MeanTokens != map[bool]float64{true: 12, false: 5}[m.Mode != "direct"] {
			t.Errorf("mode %d: %+v, want %s at %.1f", i, m, want.mode, want.acc)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	for _, want := range []string{"# codeplan eval: synth", "| direct | 10 | 10 | 100.0% |", "| nlplan | 10 | 0 | 0.0% |",
		"| codeplan | 10 | 8 | 80.0% |", "-20.0%", "-100.0%", "## Accuracy by number of steps", "| 3 |",
		"## Accuracy by task", "| truth | 100.0% (2/2) | 0.0% (0/2) | 0.0% (0/2) |", "| text | 100.0% (2/2) |", "(report.png)", "fake.gguf", "prompted"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	var sum struct {
		Rows  int `json:"rows"`
		Modes []struct {
			Mode   string   `json:"mode"`
			Gain   *float64 `json:"gain_vs_direct"`
			ByStep []struct {
				Steps int `json:"steps"`
			} `json:"by_steps"`
			ByTask []struct{ Task string } `json:"by_task"`
		} `json:"modes"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, data)
	}
	if sum.Rows != 30 || len(sum.Modes) != 3 || sum.Modes[0].Gain != nil || sum.Modes[1].Gain == nil || *sum.Modes[1].Gain != -1 ||
		len(sum.Modes[2].ByStep) != 2 || len(sum.Modes[2].ByTask) != 5 {
		t.Errorf("summary.json:\n%s", data)
	}
	f, err := os.Open(filepath.Join(dir, ChartFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 100 {
		t.Errorf("report.png: %v", err)
	}
}

func TestBuildReportWithoutResults(t *testing.T) {
	if _, err := BuildReport(t.TempDir(), "x"); err == nil || !strings.Contains(err.Error(), "results.jsonl") {
		t.Errorf("a report without results: %v", err)
	}
}

// TestReportTitleFromRows checks that a report rebuilt without the
// benchmark's name (eval --report-only --out DIR) is titled with the
// benchmark recorded in the rows, else in an earlier summary.json, and
// only then with the folder's name.
func TestReportTitleFromRows(t *testing.T) {
	write := func(dir, bench string) {
		t.Helper()
		os.MkdirAll(dir, 0o755)
		var b strings.Builder
		for i, mode := range []string{"direct", "codeplan"} {
			row := map[string]any{"id": "q1|" + mode, "item_id": "q1", "mode": mode, "index": i, "correct": i == 1}
			if bench != "" {
				row["bench"] = bench
			}
			line, _ := json.Marshal(row)
			b.Write(append(line, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, evaluate.ResultsFile), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	title := func(dir string) string {
		t.Helper()
		rep, err := BuildReport(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		md, _ := os.ReadFile(filepath.Join(dir, ReportFile))
		if first, _, _ := strings.Cut(string(md), "\n"); first != "# codeplan eval: "+rep.Bench {
			t.Errorf("report.md starts %q, want the title %q", first, rep.Bench)
		}
		return rep.Bench
	}
	root := t.TempDir()
	withBench := filepath.Join(root, "my-folder")
	write(withBench, "gsm8k_test.jsonl")
	if got := title(withBench); got != "gsm8k_test.jsonl" {
		t.Errorf("title %q, want the benchmark recorded in the rows", got)
	}
	// Rows from before rows carried it: the summary.json just written
	// still names it.
	write(withBench, "")
	if got := title(withBench); got != "gsm8k_test.jsonl" {
		t.Errorf("title %q, want the benchmark of the earlier summary.json", got)
	}
	bare := filepath.Join(root, "eval-old")
	write(bare, "")
	if got := title(bare); got != "eval-old" {
		t.Errorf("title %q, want the folder's name as the last resort", got)
	}
}

// TestReportNamesItemsThatCouldNotRun checks that rows that could not run
// (evaluate.Row.Error, e.g. a prompt too long) count as wrong, are counted
// per mode, and that the report's header names the mode they failed in.
func TestReportNamesItemsThatCouldNotRun(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i, item := range []string{"q1", "q2", "q3", "q4"} {
		for _, mode := range []string{"direct", "codeplan"} {
			row := map[string]any{"id": item + "|" + mode, "item_id": item, "mode": mode, "index": i, "correct": true}
			if item == "q4" && mode == "direct" {
				row["correct"], row["error"] = false, "prompt too long"
			}
			line, _ := json.Marshal(row)
			b.Write(append(line, '\n'))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, evaluate.ResultsFile), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := BuildReport(dir, "x")
	if err != nil || rep.Errors != 1 || rep.Summary.Modes[0].Correct != 3 || rep.Summary.Modes[0].Errors != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	if !strings.Contains(string(md), "1 could not run (prompt too long or context full: direct 1)") {
		t.Errorf("report header does not name the mode of the item that could not run:\n%s", md)
	}
}
