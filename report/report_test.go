package report

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestWilsonHandComputed(t *testing.T) {
	// Values computed by hand from the Wilson formula with z = 1.96 and
	// cross-checked against published tables (e.g. 5/10 -> 0.2366-0.7634).
	cases := []struct {
		correct, n int
		low, high  float64
	}{
		{5, 10, 0.2366, 0.7634},
		{0, 10, 0.0000, 0.2775},
		{10, 10, 0.7225, 1.0000},
		{1, 10, 0.0179, 0.4042},
		{50, 100, 0.4038, 0.5962},
		{1, 1, 0.2065, 1.0000},
	}
	for _, c := range cases {
		got := Wilson(c.correct, c.n, Z95)
		if math.Abs(got.Low-c.low) > 5e-5 || math.Abs(got.High-c.high) > 5e-5 {
			t.Errorf("Wilson(%d, %d) = [%.5f, %.5f], want [%.4f, %.4f]", c.correct, c.n, got.Low, got.High, c.low, c.high)
		}
	}
	if got := Wilson(0, 0, Z95); got != (Interval{0, 1}) {
		t.Errorf("Wilson(0, 0) = %+v, want [0, 1]", got)
	}
	// The interval is symmetric under swapping successes and failures.
	a, b := Wilson(3, 17, Z95), Wilson(14, 17, Z95)
	if math.Abs(a.Low-(1-b.High)) > 1e-12 || math.Abs(a.High-(1-b.Low)) > 1e-12 {
		t.Errorf("asymmetric: %+v vs %+v", a, b)
	}
}

func TestRelativeGain(t *testing.T) {
	cases := []struct {
		acc, base, want float64
	}{
		{0.6, 0.5, 0.2},
		{0.4, 0.5, -0.2},
		{0.5, 0.5, 0},
		{0.3, 0, math.NaN()},
		{0.3, math.NaN(), math.NaN()},
	}
	for _, c := range cases {
		got := RelativeGain(c.acc, c.base)
		if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-12) {
			t.Errorf("RelativeGain(%v, %v) = %v, want %v", c.acc, c.base, got, c.want)
		}
	}
}

// sample has three modes, the baseline appearing second, with steps.
func sample() []Result {
	var rs []Result
	add := func(mode string, steps, n, correct, tokens int, secs float64) {
		for i := 0; i < n; i++ {
			rs = append(rs, Result{Mode: mode, ItemID: fmt.Sprintf("s%d-%c", steps, 'a'+i), Steps: steps,
				Correct: i < correct, Strict: i < correct-1, F1: map[bool]float64{true: 1, false: 0.25}[i < correct], Tokens: tokens, Seconds: secs})
		}
	}
	add("code-plan", 1, 4, 4, 100, 2)
	add("direct", 1, 4, 3, 20, 0.5)
	add("nl-plan", 1, 4, 3, 80, 1.5)
	add("code-plan", 2, 4, 3, 120, 3)
	add("direct", 2, 4, 1, 30, 0.5)
	add("nl-plan", 2, 4, 2, 90, 1.5)
	add("direct", 0, 2, 0, 10, 0.5) // unknown steps: counted overall only
	return rs
}

func TestSummarize(t *testing.T) {
	s := Summarize(sample())
	var modes []string
	for _, m := range s.Modes {
		modes = append(modes, m.Mode)
	}
	if strings.Join(modes, ",") != "direct,code-plan,nl-plan" {
		t.Fatalf("mode order %v, want baseline first then first appearance", modes)
	}
	if !s.HasBaseline || len(s.Steps) != 2 || s.Steps[0] != 1 || s.Steps[1] != 2 {
		t.Fatalf("summary %+v", s)
	}
	d, c := s.Modes[0], s.Modes[1]
	if d.N != 10 || d.Correct != 4 || math.Abs(d.Accuracy-0.4) > 1e-12 || !math.IsNaN(d.Gain) {
		t.Errorf("direct %+v", d)
	}
	if math.Abs(d.MeanTokens-22) > 1e-12 || math.Abs(d.MeanSeconds-0.5) > 1e-12 {
		t.Errorf("direct means %+v", d)
	}
	// code-plan: 7/8 = 0.875; on the same 8 items direct has 4/8 = 0.5
	// (its 2 extra items are not paired) -> gain (0.875-0.5)/0.5 = 0.75.
	if c.N != 8 || math.Abs(c.Accuracy-0.875) > 1e-12 || math.Abs(c.Gain-0.75) > 1e-12 {
		t.Errorf("code-plan %+v", c)
	}
	if !s.Unequal {
		t.Error("direct has 10 items and code-plan 8, but Unequal is false")
	}
	// Strict counts one fewer correct item per (mode, steps) group.
	if c.StrictCorrect != 5 || d.StrictCorrect != 2 {
		t.Errorf("strict correct: code-plan %d, direct %d", c.StrictCorrect, d.StrictCorrect)
	}
	p, ok := s.PairedWith("code-plan")
	if !ok || p.N != 8 || p.BaseCorrect != 4 || p.Correct != 7 || p.OnlyMode != 3 || p.OnlyBase != 0 {
		t.Errorf("paired %+v", p)
	}
	if math.Abs(c.MeanF1-(7*1+1*0.25)/8.0) > 1e-12 {
		t.Errorf("code-plan mean F1 %v", c.MeanF1)
	}
	if len(d.ByStep) != 2 || d.ByStep[0] != (StepSummary{Steps: 1, N: 4, Correct: 3, Accuracy: 0.75, CI: Wilson(3, 4, Z95)}) {
		t.Errorf("direct by step %+v", d.ByStep)
	}
}

func TestGainNotAvailable(t *testing.T) {
	s := Summarize([]Result{
		{Mode: "direct", Correct: false},
		{Mode: "code-plan", Correct: true},
	})
	if !math.IsNaN(s.Modes[1].Gain) {
		t.Errorf("gain over a 0%% baseline = %v, want NaN", s.Modes[1].Gain)
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| code-plan | 1 | 1 | 100.0% | [20.7%, 100.0%] | 0.0% | [0.0%, 79.3%] | +100.0 pp | n/a |") {
		t.Errorf("markdown:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "_No items with a known number of steps._") {
		t.Errorf("missing no-steps note:\n%s", buf.String())
	}
	noBase := Summarize([]Result{{Mode: "nl-plan", Correct: true}})
	buf.Reset()
	if err := WriteMarkdown(&buf, noBase); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| n/a |") || !strings.Contains(buf.String(), `No "direct" mode`) {
		t.Errorf("markdown without baseline:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteMarkdown(&buf, Summarize(nil)); err != nil || buf.String() != "_No results._\n" {
		t.Errorf("empty summary: %q, %v", buf.String(), err)
	}
}

func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, Summarize(sample())); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("markdown differs from %s:\n--- got\n%s\n--- want\n%s", golden, buf.String(), want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteErrorsPropagate(t *testing.T) {
	if err := WriteMarkdown(failWriter{}, Summarize(sample())); err == nil {
		t.Error("WriteMarkdown ignored a write error")
	}
	if err := WriteChart(failWriter{}, Summarize(sample()), ChartOptions{}); err == nil {
		t.Error("WriteChart ignored a write error")
	}
}

func TestChartDecodes(t *testing.T) {
	// Width: 500 pixels per panel; the steps panel only when the items
	// have more than one step count (not for GSM8K's steps = 1).
	cases := map[string]struct {
		rs    []Result
		width int
	}{
		"with steps":    {sample(), 1000},
		"without steps": {[]Result{{Mode: "direct", Correct: true}, {Mode: "code-plan"}}, 500},
		"single mode":   {[]Result{{Mode: "x|y", Steps: 3, Correct: true}}, 500},
		"all steps = 1": {[]Result{{Mode: "direct", Steps: 1, Correct: true}, {Mode: "code-plan", Steps: 1}}, 500},
	}
	for name, tc := range cases {
		var buf bytes.Buffer
		if err := WriteChart(&buf, Summarize(tc.rs), ChartOptions{Title: name}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("%s: PNG does not decode: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != tc.width || b.Dy() != 440 {
			t.Errorf("%s: image is %dx%d, want %dx440", name, b.Dx(), b.Dy(), tc.width)
		}
		// A drawn chart is not one flat colour.
		first := img.At(0, 0)
		varied := false
		for x := 0; x < tc.width && !varied; x += 7 {
			for y := 0; y < 440; y += 7 {
				if img.At(x, y) != first {
					varied = true
					break
				}
			}
		}
		if !varied {
			t.Errorf("%s: image is blank", name)
		}
	}
	if err := WriteChart(&bytes.Buffer{}, Summarize(nil), ChartOptions{}); err == nil {
		t.Error("charting no results should fail")
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := SaveChart(path, Summarize(sample()), ChartOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Errorf("saved chart: %v, %v", st, err)
	}
}

// inked reports whether the rectangle [x0,x1)×[y0,y1) of img holds any
// pixel that is not white.
func inked(img image.Image, x0, y0, x1, y1 int) bool {
	for x := x0; x < x1; x++ {
		for y := y0; y < y1; y++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || b < 0xf000 {
				return true
			}
		}
	}
	return false
}

// TestChartLayout checks the parts of the chart layout that can be read
// off the pixels: the title band is used only with a title, a third panel
// appears for several tasks, and nothing is drawn above the 100% line of
// the bar panel (the axis stops at 100%, value labels stay inside it).
func TestChartLayout(t *testing.T) {
	render := func(opts ChartOptions) image.Image {
		t.Helper()
		var buf bytes.Buffer
		if err := WriteChart(&buf, Summarize(sample()), opts); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// The figure title is centred across both panels, where the gap
	// between the panels' own titles is.
	plain := render(ChartOptions{})
	if inked(plain, 490, 5, 510, 35) {
		t.Error("without a title something is drawn between the panel titles")
	}
	titled := render(ChartOptions{Title: "synth · tiny.gguf + lora.gguf"})
	if !inked(titled, 490, 5, 510, 35) {
		t.Error("the title was not drawn in the top band")
	}
	tasks := []TaskResult{
		{Mode: "direct", Task: "arith", N: 4, Correct: 2}, {Mode: "code-plan", Task: "arith", N: 4, Correct: 3},
		{Mode: "direct", Task: "list", N: 4, Correct: 0}, {Mode: "code-plan", Task: "list", N: 4, Correct: 4},
	}
	three := render(ChartOptions{Tasks: tasks})
	if b := three.Bounds(); b.Dx() != 1500 {
		t.Fatalf("with two tasks the chart is %d wide, want 1500 (three panels)", b.Dx())
	}
	if !inked(three, 1050, 60, 1490, 400) {
		t.Error("the task panel is empty")
	}
	if one := render(ChartOptions{Tasks: tasks[:2]}); one.Bounds().Dx() != 1000 {
		t.Error("a single task should not get a panel")
	}
	if dir := os.Getenv("CODEPLAN_CHART_DIR"); dir != "" { // for looking at it
		var buf bytes.Buffer
		WriteChart(&buf, Summarize(sample()), ChartOptions{Title: "synth · tiny.gguf + lora.gguf", Tasks: tasks})
		os.WriteFile(filepath.Join(dir, "eval-chart.png"), buf.Bytes(), 0o644)
	}
}

// hasColour reports whether the rectangle holds a pixel within a small
// distance of c.
func hasColour(img image.Image, c color.Color, x0, y0, x1, y1 int) bool {
	cr, cg, cb, _ := c.RGBA()
	near := func(a, b uint32) bool { return a>>8 <= b>>8+12 && b>>8 <= a>>8+12 }
	for x := x0; x < x1; x++ {
		for y := y0; y < y1; y++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, cr) && near(g, cg) && near(b, cb) {
				return true
			}
		}
	}
	return false
}

// TestChartModesApartAtZero checks that the modes can be told apart when
// every accuracy is 0: the legend band under the panels shows each mode's
// colour, and each 0% bar is drawn as a line of its colour on the axis.
func TestChartModesApartAtZero(t *testing.T) {
	var rs []Result
	for _, m := range []string{"direct", "nlplan", "codeplan"} {
		for k := 1; k <= 3; k++ {
			rs = append(rs, Result{Mode: m, ItemID: fmt.Sprint(k), Steps: k})
		}
	}
	tasks := []TaskResult{}
	for _, m := range []string{"direct", "nlplan", "codeplan"} {
		for _, task := range []string{"arith", "list", "text", "order", "truth"} {
			tasks = append(tasks, TaskResult{Mode: m, Task: task, N: 4, Correct: 2})
		}
	}
	var buf bytes.Buffer
	if err := WriteChart(&buf, Summarize(rs), ChartOptions{Title: "all at 0", Tasks: tasks}); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for i := range 3 {
		if !hasColour(img, plotutil.Color(i), 0, b.Dy()-35, b.Dx(), b.Dy()) {
			t.Errorf("legend band lacks mode %d's colour", i)
		}
		// The bar panel's lower part (the 0% line is there).
		if !hasColour(img, plotutil.Color(i), 40, b.Dy()-110, 500, b.Dy()-40) {
			t.Errorf("the 0%% bar of mode %d is not drawn in its colour", i)
		}
	}
	if dir := os.Getenv("CODEPLAN_CHART_DIR"); dir != "" { // for looking at it
		os.WriteFile(filepath.Join(dir, "eval-chart-zero.png"), raw, 0o644)
	}
}
