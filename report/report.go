// Package report summarises per-item evaluation results of `codeplan
// eval` by answering mode (direct, natural-language plan, code-form plan,
// ...): accuracy with a 95% Wilson confidence interval, mean tokens and
// time per item, the relative gain of each mode over the "direct"
// baseline, and accuracy by number of reasoning steps. It renders the
// summary as Markdown tables and as a PNG chart, and builds an eval
// folder's report files from its results.jsonl (BuildReport).
package report

import (
	"github.com/codeplan-dev/codeplan/stats"
	"math"
	"slices"
)

// Baseline is the mode that relative gains are measured against.
const Baseline = "direct"

// Z95 is the standard normal quantile for a two-sided 95% interval.
const Z95 = stats.Z95

// Result is the outcome of one item under one mode.
type Result struct {
	Mode    string
	ItemID  string
	Steps   int // reasoning steps of the item; 0 if unknown
	Correct bool
	// Strict is Correct under strict answer extraction: the answer was
	// marked in the form the prompt asked for (see answer.Strict).
	Strict  bool
	F1      float64
	Tokens  int     // generated tokens
	Seconds float64 // wall time spent on the item
	// Error marks an item that could not run in this mode (its prompt does
	// not fit the context, or the context filled before the token limits):
	// it counts as wrong in the accuracy, is counted per mode, and is left
	// out of every paired comparison.
	Error bool
}

// Interval is a confidence interval.
type Interval struct {
	Low, High float64
}

// Wilson returns the Wilson score interval for correct successes out of
// n trials at normal quantile z (Z95 for 95%); see stats.Wilson.
func Wilson(correct, n int, z float64) Interval {
	w := stats.Wilson(correct, n, z)
	return Interval{Low: w.Low, High: w.High}
}

// RelativeGain is (acc - base) / base: +0.2 means 20% more accurate than
// the baseline. It is NaN when base is 0 or NaN, where a ratio means
// nothing; renderers print such gains as "n/a".
func RelativeGain(acc, base float64) float64 {
	if base == 0 || math.IsNaN(base) || math.IsNaN(acc) {
		return math.NaN()
	}
	return (acc - base) / base
}

// StepSummary is the accuracy of one mode on items with one step count.
type StepSummary struct {
	Steps, N, Correct int
	Accuracy          float64
	CI                Interval
}

// ModeSummary aggregates the results of one mode.
type ModeSummary struct {
	Mode       string
	N, Correct int
	Accuracy   float64
	CI         Interval // 95% Wilson interval of Accuracy
	// StrictCorrect, StrictAccuracy and StrictCI are the same under strict
	// answer extraction (Result.Strict); Accuracy is the flexible figure.
	StrictCorrect  int
	StrictAccuracy float64
	StrictCI       Interval
	MeanF1         float64
	// Errors counts the items that could not run in this mode
	// (Result.Error); they are in N and count as wrong.
	Errors int
	// MeanTokens and MeanSeconds are averages per item.
	MeanTokens, MeanSeconds float64
	// Gain is RelativeGain over the Baseline mode on the items both
	// answered (Paired.Gain); NaN for the baseline itself, when there is no
	// baseline, or when its accuracy on those items is 0.
	Gain float64
	// Diff is the absolute accuracy difference from the Baseline on the
	// same items (Paired.Diff); NaN for the baseline itself or without one.
	Diff float64
	// ByStep has one entry per step count (> 0) seen for this mode, in
	// increasing order.
	ByStep []StepSummary
}

// Summary is the whole report: one entry per mode, the baseline first
// when present, then the others in order of first appearance.
type Summary struct {
	Modes []ModeSummary
	// Steps are all step counts > 0 present in any mode, increasing.
	Steps []int
	// HasBaseline tells whether Baseline is among the modes.
	HasBaseline bool
	// Paired compares every other mode with the Baseline on the items both
	// answered and ran, in Modes order (empty without a baseline), then
	// PlanMode with PlanBaseline when both are present; flexible accuracy.
	Paired []Paired
	// StrictPaired is Paired under strict accuracy (Result.Strict).
	StrictPaired []Paired
	// Unequal is true when the modes did not all answer the same items:
	// Paired then covers fewer items than some modes' N.
	Unequal bool
}

// PairedWith returns the paired comparison (flexible accuracy) of mode
// with the Baseline.
func (s Summary) PairedWith(mode string) (Paired, bool) {
	return s.Comparison(mode, Baseline, false)
}

// Comparison returns the paired comparison of mode with base, under strict
// or flexible accuracy.
func (s Summary) Comparison(mode, base string, strict bool) (Paired, bool) {
	list := s.Paired
	if strict {
		list = s.StrictPaired
	}
	for _, p := range list {
		if p.Mode == mode && p.Base == base {
			return p, true
		}
	}
	return Paired{}, false
}

// Summarize aggregates results per mode and per step count.
func Summarize(results []Result) Summary {
	type acc struct {
		ms     ModeSummary
		f1     float64
		tokens float64
		secs   float64
		steps  map[int]*StepSummary
	}
	var order, itemOrder []string
	byMode := map[string]*acc{}
	stepSet := map[int]bool{}
	verdicts := map[string]map[string]verdict{} // mode -> item -> verdict
	seenItem := map[string]bool{}
	for _, r := range results {
		if verdicts[r.Mode] == nil {
			verdicts[r.Mode] = map[string]verdict{}
		}
		if _, seen := verdicts[r.Mode][r.ItemID]; !seen {
			verdicts[r.Mode][r.ItemID] = verdict{correct: r.Correct, strict: r.Strict, err: r.Error}
		}
		if !seenItem[r.ItemID] {
			seenItem[r.ItemID] = true
			itemOrder = append(itemOrder, r.ItemID)
		}
		a, ok := byMode[r.Mode]
		if !ok {
			a = &acc{ms: ModeSummary{Mode: r.Mode}, steps: map[int]*StepSummary{}}
			byMode[r.Mode] = a
			order = append(order, r.Mode)
		}
		a.ms.N++
		if r.Error {
			a.ms.Errors++
		}
		if r.Strict {
			a.ms.StrictCorrect++
		}
		a.f1 += r.F1
		a.tokens += float64(r.Tokens)
		a.secs += r.Seconds
		if r.Correct {
			a.ms.Correct++
		}
		if r.Steps > 0 {
			stepSet[r.Steps] = true
			s, ok := a.steps[r.Steps]
			if !ok {
				s = &StepSummary{Steps: r.Steps}
				a.steps[r.Steps] = s
			}
			s.N++
			if r.Correct {
				s.Correct++
			}
		}
	}
	if i := slices.Index(order, Baseline); i > 0 {
		order = append([]string{Baseline}, slices.Delete(order, i, i+1)...)
	}
	var sum Summary
	sum.HasBaseline = byMode[Baseline] != nil
	for _, mode := range order {
		a := byMode[mode]
		ms := a.ms
		n := float64(ms.N)
		ms.Accuracy = float64(ms.Correct) / n
		ms.CI = Wilson(ms.Correct, ms.N, Z95)
		ms.StrictAccuracy = float64(ms.StrictCorrect) / n
		ms.StrictCI = Wilson(ms.StrictCorrect, ms.N, Z95)
		if ms.N != byMode[order[0]].ms.N {
			sum.Unequal = true
		}
		ms.MeanF1 = a.f1 / n
		ms.MeanTokens = a.tokens / n
		ms.MeanSeconds = a.secs / n
		ms.Gain, ms.Diff = math.NaN(), math.NaN()
		if mode != Baseline && sum.HasBaseline {
			b, m, excluded := pairs(verdicts[Baseline], verdicts[mode], itemOrder)
			p := comparePaired(mode, Baseline, false, b, m, excluded)
			sum.Paired = append(sum.Paired, p)
			sum.StrictPaired = append(sum.StrictPaired, comparePaired(mode, Baseline, true, b, m, excluded))
			ms.Gain, ms.Diff = p.Gain, p.Diff
			if p.N+p.Excluded != ms.N || p.N+p.Excluded != byMode[Baseline].ms.N {
				sum.Unequal = true
			}
		}
		for _, s := range a.steps {
			s.Accuracy = float64(s.Correct) / float64(s.N)
			s.CI = Wilson(s.Correct, s.N, Z95)
			ms.ByStep = append(ms.ByStep, *s)
		}
		slices.SortFunc(ms.ByStep, func(x, y StepSummary) int { return x.Steps - y.Steps })
		sum.Modes = append(sum.Modes, ms)
	}
	if byMode[PlanBaseline] != nil && byMode[PlanMode] != nil {
		b, m, excluded := pairs(verdicts[PlanBaseline], verdicts[PlanMode], itemOrder)
		sum.Paired = append(sum.Paired, comparePaired(PlanMode, PlanBaseline, false, b, m, excluded))
		sum.StrictPaired = append(sum.StrictPaired, comparePaired(PlanMode, PlanBaseline, true, b, m, excluded))
	}
	for k := range stepSet {
		sum.Steps = append(sum.Steps, k)
	}
	slices.Sort(sum.Steps)
	return sum
}

// step returns the summary of one step count, if the mode has items
// with that count.
func (m ModeSummary) step(k int) (StepSummary, bool) {
	for _, s := range m.ByStep {
		if s.Steps == k {
			return s, true
		}
	}
	return StepSummary{}, false
}
