// Package replication summarises a CodePlan replication: the eval results
// of several models, each evaluated in its own mode (direct, nlplan,
// codeplan) on the same synthetic test items, as accuracy against the
// number of reasoning steps k (one line per mode, 95% Wilson intervals) and
// a table per problem family with the relative gain of each plan mode over
// direct, overall and at the largest k: the paper's two claims (plans
// help, and help more as steps grow) in one page.
package replication

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/report"
)

// All is the task name of the rows of every family together.
const All = "all"

// Tally counts results of one mode on one task (or All) at one k (0 = all
// step counts).
type Tally struct {
	N, Correct int
}

// Accuracy is Correct/N, NaN when N is 0.
func (t Tally) Accuracy() float64 {
	if t.N == 0 {
		return math.NaN()
	}
	return float64(t.Correct) / float64(t.N)
}

// CI is the 95% Wilson interval of the accuracy.
func (t Tally) CI() report.Interval { return report.Wilson(t.Correct, t.N, report.Z95) }

type key struct {
	mode, task string
	k          int
}

// Summary holds the tallies of a set of result rows.
type Summary struct {
	Modes []string // in planner.Modes() order, then others by name
	Tasks []string // families by name
	Steps []int    // ascending
	// Models maps each mode to the model files that produced its rows.
	Models map[string][]string
	// Unterminated counts, per mode, plan-mode rows whose plan hit the
	// token limit (a sign the model did not learn to close its plan).
	Unterminated map[string]int
	cells        map[key]*Tally
}

// Summarize tallies rows by mode, task and steps.
func Summarize(rows []evaluate.Row) Summary {
	s := Summary{Models: map[string][]string{}, Unterminated: map[string]int{}, cells: map[key]*Tally{}}
	add := func(k key, correct bool) {
		t := s.cells[k]
		if t == nil {
			t = &Tally{}
			s.cells[k] = t
		}
		t.N++
		if correct {
			t.Correct++
		}
	}
	for _, r := range rows {
		mode := string(r.Mode)
		if !slices.Contains(s.Modes, mode) {
			s.Modes = append(s.Modes, mode)
		}
		if !slices.Contains(s.Tasks, r.Task) {
			s.Tasks = append(s.Tasks, r.Task)
		}
		if !slices.Contains(s.Steps, r.Steps) {
			s.Steps = append(s.Steps, r.Steps)
		}
		if r.Model != "" && !slices.Contains(s.Models[mode], r.Model) {
			s.Models[mode] = append(s.Models[mode], r.Model)
		}
		if r.PlanFinish == "length" {
			s.Unterminated[mode]++
		}
		for _, task := range []string{r.Task, All} {
			for _, k := range []int{r.Steps, 0} {
				add(key{mode, task, k}, r.Correct)
			}
		}
	}
	order := func(m string) int {
		if i := slices.Index(planner.Modes(), planner.Mode(m)); i >= 0 {
			return i
		}
		return len(planner.Modes())
	}
	slices.SortStableFunc(s.Modes, func(a, b string) int {
		if d := order(a) - order(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	slices.Sort(s.Tasks)
	slices.Sort(s.Steps)
	return s
}

// Get returns the tally of mode on task (or All) at k (0 = every k).
func (s Summary) Get(mode, task string, k int) Tally {
	if t := s.cells[key{mode, task, k}]; t != nil {
		return *t
	}
	return Tally{}
}

// Gain is the relative gain of mode over direct on task at k (0 = every
// k); NaN when direct has no result or 0% there.
func (s Summary) Gain(mode, task string, k int) float64 {
	return report.RelativeGain(s.Get(mode, task, k).Accuracy(), s.Get(report.Baseline, task, k).Accuracy())
}

// MaxK is the largest step count.
func (s Summary) MaxK() int {
	if len(s.Steps) == 0 {
		return 0
	}
	return s.Steps[len(s.Steps)-1]
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

func gain(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f%%", 100*x)
}

func accCI(t Tally) string {
	if t.N == 0 {
		return "–"
	}
	ci := t.CI()
	return fmt.Sprintf("%s [%.0f, %.0f] (n=%d)", pct(t.Accuracy()), 100*ci.Low, 100*ci.High, t.N)
}

// WriteMarkdown writes the tables: accuracy by k for all families, then one
// table per family (and one for all) with accuracy per mode, the relative
// gain over direct, and accuracy and gain at the largest k.
func (s Summary) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("### Accuracy by number of steps k (all families, 95% Wilson interval)\n\n| k |")
	for _, m := range s.Modes {
		fmt.Fprintf(&b, " %s |", m)
	}
	b.WriteString("\n|--:|")
	for range s.Modes {
		b.WriteString("--:|")
	}
	b.WriteString("\n")
	for _, k := range s.Steps {
		fmt.Fprintf(&b, "| %d |", k)
		for _, m := range s.Modes {
			fmt.Fprintf(&b, " %s |", accCI(s.Get(m, All, k)))
		}
		b.WriteString("\n")
	}
	kmax := s.MaxK()
	fmt.Fprintf(&b, "\n### Per family: accuracy, relative gain over direct, and both at the largest k (%d)\n\n", kmax)
	fmt.Fprintf(&b, "| family | mode | accuracy | gain vs direct | accuracy at k=%d | gain at k=%d |\n|:--|:--|--:|--:|--:|--:|\n", kmax, kmax)
	for _, task := range append(slices.Clone(s.Tasks), All) {
		for _, m := range s.Modes {
			g, gk := "–", "–"
			if m != report.Baseline {
				g, gk = gain(s.Gain(m, task, 0)), gain(s.Gain(m, task, kmax))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", task, m,
				accCI(s.Get(m, task, 0)), g, pct(s.Get(m, task, kmax).Accuracy()), gk)
		}
	}
	if len(s.Unterminated) > 0 {
		b.WriteString("\nPlans that hit the plan token limit:")
		for _, m := range s.Modes {
			if n := s.Unterminated[m]; n > 0 {
				fmt.Fprintf(&b, " %s %d of %d;", m, n, s.Get(m, All, 0).N)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonCell is one (mode, task, k) entry of summary.json.
type jsonCell struct {
	Mode     string  `json:"mode"`
	Task     string  `json:"task"`
	K        int     `json:"k"` // 0 = all step counts
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	CILow    float64 `json:"ci_low"`
	CIHigh   float64 `json:"ci_high"`
	// Gain is the relative gain over direct (null where undefined).
	Gain *float64 `json:"gain"`
}

// MarshalJSON writes every cell, for scripts that compare runs.
func (s Summary) MarshalJSON() ([]byte, error) {
	var cells []jsonCell
	for _, task := range append(slices.Clone(s.Tasks), All) {
		for _, m := range s.Modes {
			for _, k := range append([]int{0}, s.Steps...) {
				t := s.Get(m, task, k)
				if t.N == 0 {
					continue
				}
				ci := t.CI()
				c := jsonCell{Mode: m, Task: task, K: k, N: t.N, Correct: t.Correct, Accuracy: t.Accuracy(), CILow: ci.Low, CIHigh: ci.High}
				if g := s.Gain(m, task, k); !math.IsNaN(g) && !math.IsInf(g, 0) {
					c.Gain = &g
				}
				cells = append(cells, c)
			}
		}
	}
	return json.Marshal(map[string]any{"modes": s.Modes, "tasks": s.Tasks, "steps": s.Steps, "models": s.Models, "cells": cells})
}

// errBars adapts one mode's accuracy by k to plotter.YErrorBars.
type errBars struct {
	xys       plotter.XYs
	low, high []float64
}

func (e errBars) Len() int                        { return len(e.xys) }
func (e errBars) XY(i int) (float64, float64)     { return e.xys[i].X, e.xys[i].Y }
func (e errBars) YError(i int) (float64, float64) { return e.low[i], e.high[i] }

// modePoints collects the k with results for mode; dx shifts the points
// sideways so the modes' intervals do not hide each other.
func (s Summary) modePoints(mode string, dx float64) errBars {
	var e errBars
	for _, k := range s.Steps {
		t := s.Get(mode, All, k)
		if t.N == 0 {
			continue
		}
		ci, acc := t.CI(), t.Accuracy()
		e.xys = append(e.xys, plotter.XY{X: float64(k) + dx, Y: acc})
		e.low = append(e.low, acc-ci.Low)
		e.high = append(e.high, ci.High-acc)
	}
	return e
}

// SaveChart writes accuracy against k, one line per mode with 95% Wilson
// whiskers, as a PNG (600×420): the title in a band of its own above the
// plot, the legend in one below it, and an accuracy axis in percent that
// runs from 0 to just above the highest interval (the data would otherwise
// sit in the bottom quarter of a 0–100% axis), never past 100%.
func (s Summary) SaveChart(path, title string) error {
	if len(s.Modes) == 0 || len(s.Steps) == 0 {
		return fmt.Errorf("replication: no results to chart")
	}
	p := plot.New()
	p.X.Label.Text = "reasoning steps k"
	p.Y.Label.Text = "accuracy (95% Wilson interval)"
	p.X.Min, p.X.Max = float64(s.Steps[0])-0.5, float64(s.MaxK())+0.5
	var ticks []plot.Tick
	for _, k := range s.Steps {
		ticks = append(ticks, plot.Tick{Value: float64(k), Label: fmt.Sprint(k)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	top := 0.0
	p.Add(plotter.NewGrid())
	for i, m := range s.Modes {
		dx := (float64(i) - float64(len(s.Modes)-1)/2) * 0.08
		eb := s.modePoints(m, dx)
		if eb.Len() == 0 {
			continue
		}
		for j := range eb.xys {
			top = math.Max(top, eb.xys[j].Y+eb.high[j])
		}
		line, points, err := plotter.NewLinePoints(eb.xys)
		if err != nil {
			return fmt.Errorf("replication: line for %s: %w", m, err)
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Shape = plotutil.Shape(i)
		bars, err := plotter.NewYErrorBars(eb)
		if err != nil {
			return fmt.Errorf("replication: intervals for %s: %w", m, err)
		}
		bars.Color = plotutil.Color(i)
		p.Add(line, points, bars)
	}
	p.Y.Min, p.Y.Max = 0, percentTop(top)
	p.Y.Tick.Marker = percentTicks(p.Y.Max)

	const (
		width, height = 6 * vg.Inch, 4.2 * vg.Inch
		titleBand     = 0.45 * vg.Inch
		legendBand    = 0.35 * vg.Inch
	)
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(100))
	dc := draw.New(img)
	if title != "" {
		sty := plot.New().Title.TextStyle
		sty.Font.Size = vg.Points(13)
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
		dc.FillText(sty, vg.Point{X: width / 2, Y: height - titleBand/2}, title)
	}
	dc.Max.Y -= titleBand
	report.DrawLegend(dc, legendBand/2, s.Modes)
	dc.Min.Y += legendBand
	dc.Max.X -= vg.Points(12)
	p.Draw(dc)
	// Through the one writer of every output: refuses a device or FIFO
	// there, and leaves a file another run is writing alone.
	return dataset.WriteOutput(path, func(w io.Writer) error {
		_, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w)
		return err
	})
}

// percentTop is the top of an accuracy axis whose highest drawn value is
// top: the next multiple of 10% with a little room above it, at most 100%.
func percentTop(top float64) float64 {
	return math.Min(1, math.Max(0.1, math.Ceil((top+0.02)*10)/10))
}

// percentTicks labels an accuracy axis from 0 to max in percent, every 5%
// up to 30%, 10% up to 60%, else 20%.
func percentTicks(max float64) plot.ConstantTicks {
	step := 0.2
	switch {
	case max <= 0.3+1e-9:
		step = 0.05
	case max <= 0.6+1e-9:
		step = 0.1
	}
	var ticks []plot.Tick
	for v := 0.0; v <= max+1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f%%", 100*v)})
	}
	return ticks
}
