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

	"github.com/codeplan-dev/codeplan/engine"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/planner"
)

// scripted answers like a model that is always right in direct mode, never
// in nlplan mode, and right in codeplan mode except for truth puzzles.
type scripted struct{ gold map[string]string }

func (s scripted) Generate(_ context.Context, req engine.Request) (engine.Result, error) {
	i := strings.LastIndex(req.ID, "|")
	item, mode := req.ID[:i], planner.Mode(req.ID[i+1:])
	var text string
	switch {
	case mode == planner.Direct:
		text = "The answer is " + s.gold[item]
	case mode == planner.NLPlan || strings.Contains(item, "truth"):
		text = "I am not sure."
	default:
		text = "Following the plan.\nThe answer is " + s.gold[item] + "."
	}
	res := engine.Result{ID: req.ID, PromptTokens: 20}
	if len(req.Phases) == 2 {
		res.Phases = append(res.Phases, engine.PhaseOutput{Text: "def solve():\n    return step()\n", Tokens: 7, Finish: engine.FinishStop})
	}
	res.Phases = append(res.Phases, engine.PhaseOutput{Text: text, Tokens: 5, Finish: engine.FinishStop})
	return res, nil
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
