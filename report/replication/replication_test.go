package replication

import (
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/planner"
)

// rows makes n results of mode on task at k, the first correct of them right.
func rows(mode planner.Mode, task string, k, n, correct int) []evaluate.Row {
	var out []evaluate.Row
	for i := 0; i < n; i++ {
		out = append(out, evaluate.Row{ID: string(mode) + task, Mode: mode, Task: task, Steps: k, Correct: i < correct})
	}
	return out
}

func sample() []evaluate.Row {
	var r []evaluate.Row
	// codeplan first: the summary must still order modes direct, nlplan, codeplan.
	r = append(r, rows(planner.CodePlan, "truth", 1, 10, 8)...)
	r = append(r, rows(planner.CodePlan, "truth", 3, 10, 6)...)
	r = append(r, rows(planner.Direct, "truth", 1, 10, 5)...)
	r = append(r, rows(planner.Direct, "truth", 3, 10, 2)...)
	r = append(r, rows(planner.NLPlan, "truth", 1, 10, 5)...)
	r = append(r, rows(planner.NLPlan, "truth", 3, 10, 0)...)
	r = append(r, rows(planner.Direct, "arith", 1, 4, 0)...)
	r = append(r, rows(planner.CodePlan, "arith", 1, 4, 1)...)
	return r
}

func TestSummarizeAndGains(t *testing.T) {
	s := Summarize(sample())
	if strings.Join(s.Modes, ",") != "direct,nlplan,codeplan" {
		t.Fatalf("modes %v", s.Modes)
	}
	if strings.Join(s.Tasks, ",") != "arith,truth" || len(s.Steps) != 2 || s.MaxK() != 3 {
		t.Fatalf("tasks %v steps %v", s.Tasks, s.Steps)
	}
	if got := s.Get("codeplan", "truth", 0); got.N != 20 || got.Correct != 14 {
		t.Fatalf("codeplan truth: %+v", got)
	}
	if got := s.Get("direct", All, 1); got.N != 14 || got.Correct != 5 {
		t.Fatalf("direct all k=1: %+v", got)
	}
	// truth at k=3: codeplan 60% vs direct 20% is +200%; nlplan 0% is -100%.
	if g := s.Gain("codeplan", "truth", 3); math.Abs(g-2) > 1e-12 {
		t.Fatalf("gain at k=3 = %v, want 2", g)
	}
	if g := s.Gain("nlplan", "truth", 3); math.Abs(g+1) > 1e-12 {
		t.Fatalf("nlplan gain at k=3 = %v, want -1", g)
	}
	// direct has 0% on arith: no ratio.
	if g := s.Gain("codeplan", "arith", 0); !math.IsNaN(g) {
		t.Fatalf("gain over a 0%% baseline = %v, want NaN", g)
	}
	var b strings.Builder
	if err := s.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| truth | codeplan | 70.0% [48, 85] (n=20) | +100% | 60.0% | +200% |",
		"| arith | codeplan | 25.0% [5, 70] (n=4) | n/a | – | n/a |",
		"| 3 | 20.0% [6, 51] (n=10) | 0.0% [0, 28] (n=10) | 60.0% [31, 83] (n=10) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"mode":"codeplan","task":"truth","k":3,"n":10,"correct":6,"accuracy":0.6`) {
		t.Errorf("summary.json lacks the codeplan truth k=3 cell: %s", js)
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := s.SaveChart(path, "test"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
		t.Fatalf("chart is %v", b)
	}
	if err := Summarize(nil).SaveChart(path, "empty"); err == nil {
		t.Fatal("an empty summary charted without error")
	}
	if dir := os.Getenv("CODEPLAN_CHART_DIR"); dir != "" { // for looking at it
		s.SaveChart(filepath.Join(dir, "accuracy_by_k.png"), "CodePlan miniature (test split): accuracy by steps")
	}
}

// TestChartAxis checks the accuracy axis of accuracy_by_k.png: it runs to
// just above the highest interval in percent (the data sat in the bottom
// quarter of a 0–1.2 axis), never past 100%, with distinct round ticks.
func TestChartAxis(t *testing.T) {
	for _, tc := range []struct{ top, want float64 }{{0.29, 0.4}, {0.55, 0.6}, {0.98, 1}, {0, 0.1}, {1, 1}} {
		if got := percentTop(tc.top); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("percentTop(%v) = %v, want %v", tc.top, got, tc.want)
		}
	}
	for _, max := range []float64{0.1, 0.3, 0.4, 0.6, 1} {
		ticks := percentTicks(max)
		last := ticks[len(ticks)-1]
		if ticks[0].Label != "0%" || math.Abs(last.Value-max) > 1e-9 || len(ticks) < 3 || len(ticks) > 11 {
			t.Errorf("axis to %v: ticks %+v", max, ticks)
		}
		seen := map[string]bool{}
		for _, tk := range ticks {
			if seen[tk.Label] {
				t.Errorf("axis to %v: tick %q twice", max, tk.Label)
			}
			seen[tk.Label] = true
		}
	}
}
