package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteMarkdown renders the summary as Markdown tables: accuracy per mode
// (flexible and strict, with 95% Wilson intervals, absolute difference and
// relative gain over the baseline on paired items, mean F1, tokens and
// seconds per item), the paired comparisons (each mode with the baseline,
// code plan with NL plan; discordant pairs, the difference with its paired
// interval, the relative gain with its bootstrap interval, McNemar p), the
// same under strict accuracy, and accuracy per number of steps.
func WriteMarkdown(w io.Writer, s Summary) error {
	ew := &errWriter{w: w}
	if len(s.Modes) == 0 {
		ew.printf("_No results._\n")
		return ew.err
	}
	ew.printf("## Accuracy by mode\n\n")
	ew.printf("| Mode | N | Correct | Accuracy | 95%% CI | Strict | Strict 95%% CI | Difference vs %s | Gain vs %s | Mean F1 | Mean tokens | Mean seconds |\n", Baseline, Baseline)
	ew.printf("|:-----|--:|--:|--:|:--|--:|:--|--:|--:|--:|--:|--:|\n")
	for _, m := range s.Modes {
		ew.printf("| %s | %d | %d | %s | [%s, %s] | %s | [%s, %s] | %s | %s | %.3f | %.1f | %.2f |\n",
			cell(m.Mode), m.N, m.Correct, pct(m.Accuracy), pct(m.CI.Low), pct(m.CI.High),
			pct(m.StrictAccuracy), pct(m.StrictCI.Low), pct(m.StrictCI.High),
			diffText(m), gainText(m), m.MeanF1, m.MeanTokens, m.MeanSeconds)
	}
	ew.printf("\nAccuracy is flexible (the answer marker, else fallbacks such as the last number); ")
	ew.printf("strict counts only answers given in the format the prompt asked for. ")
	ew.printf("Difference is in percentage points (pp); gain is relative, (acc − acc_%s) / acc_%s. ", Baseline, Baseline)
	ew.printf("Both are on the items answered and run in both modes.\n")
	var cannot []string
	for _, m := range s.Modes {
		if m.Errors > 0 {
			cannot = append(cannot, fmt.Sprintf("%s %d", m.Mode, m.Errors))
		}
	}
	if len(cannot) > 0 {
		ew.printf("\nItems that could not run (prompt longer than the context, or the context filled before the token limits): %s. ", strings.Join(cannot, ", "))
		ew.printf("They count as wrong in Accuracy and are left out of the paired comparisons.\n")
	}
	if !s.HasBaseline {
		ew.printf("\nNo %q mode in the results, so gains are n/a.\n", Baseline)
	}
	if len(s.Paired) > 0 {
		ew.printf("\n## Paired comparisons\n\n")
		if s.Unequal {
			ew.printf("The modes did not all answer the same items: each row compares on the items both answered.\n\n")
		}
		writePairedTable(ew, s.Paired)
		ew.printf("\nDifference: 95%% interval for paired proportions (Newcombe's method 10), defined for any counts. ")
		ew.printf("Relative gain: 95%% paired-bootstrap percentile interval (%d resamples, fixed seed); a resample in which the baseline ", BootstrapRounds)
		ew.printf("has no correct item has no finite gain and counts as unbounded (none is dropped), so when those reach the top 2.5%% ")
		ew.printf("the interval is undefined. McNemar p is exact (two-sided).\n")
		if len(s.StrictPaired) > 0 {
			ew.printf("\n### Strict accuracy\n\n")
			writePairedTable(ew, s.StrictPaired)
		}
	}
	ew.printf("\n## Accuracy by number of steps\n\n")
	if len(s.Steps) == 0 {
		ew.printf("_No items with a known number of steps._\n")
		return ew.err
	}
	ew.printf("| Steps |")
	for _, m := range s.Modes {
		ew.printf(" %s |", cell(m.Mode))
	}
	ew.printf("\n|--:|")
	for range s.Modes {
		ew.printf("--:|")
	}
	ew.printf("\n")
	for _, k := range s.Steps {
		ew.printf("| %d |", k)
		for _, m := range s.Modes {
			if st, ok := m.step(k); ok {
				ew.printf(" %s (%d/%d) |", pct(st.Accuracy), st.Correct, st.N)
			} else {
				ew.printf(" – |")
			}
		}
		ew.printf("\n")
	}
	return ew.err
}

// writePairedTable renders one table of paired comparisons.
func writePairedTable(ew *errWriter, ps []Paired) {
	ew.printf("| Comparison | Paired items | Baseline correct | Mode correct | Only baseline right | Only mode right | Difference [95%% CI] | Relative gain [95%% CI] | McNemar p |\n")
	ew.printf("|:-----|--:|--:|--:|--:|--:|:--|:--|--:|\n")
	for _, p := range ps {
		items := fmt.Sprint(p.N)
		if p.Excluded > 0 {
			items += fmt.Sprintf(" (%d could not run)", p.Excluded)
		}
		ew.printf("| %s vs %s | %s | %d | %d | %d | %d | %s | %s | %s |\n", cell(p.Mode), cell(p.Base), items, p.BaseCorrect, p.Correct,
			p.OnlyBase, p.OnlyMode, diffWithCI(p), gainWithCI(p), pValue(p.PValue))
	}
}

// diffWithCI renders a paired difference in percentage points with its
// interval.
func diffWithCI(p Paired) string {
	if p.N == 0 || math.IsNaN(p.Diff) {
		return "n/a (no paired items)"
	}
	return fmt.Sprintf("%s [%s, %s]", pp(p.Diff), pp(p.DiffCI.Low), pp(p.DiffCI.High))
}

// gainWithCI renders a relative gain with its bootstrap interval, or says
// why either is undefined.
func gainWithCI(p Paired) string {
	switch {
	case p.N == 0:
		return "n/a (no paired items)"
	case math.IsNaN(p.Gain):
		return fmt.Sprintf("undefined (%s has no correct item)", p.Base)
	case math.IsNaN(p.GainCI.Low) && p.GainUndefined > 0:
		return fmt.Sprintf("%s [undefined: %s had no correct item in %d of %d resamples]", signedPct(p.Gain), p.Base, p.GainUndefined, BootstrapRounds)
	}
	return signedPct(p.Gain) + " " + intervalText(p.GainCI)
}

// pp renders an accuracy difference in signed percentage points.
func pp(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	v := 100 * x
	if math.Abs(v) < 0.05 {
		v = 0 // no "-0.0"
	}
	return fmt.Sprintf("%+.1f pp", v)
}

// diffText renders a mode's difference from the baseline: "—" for the
// baseline itself, "n/a" where undefined.
func diffText(m ModeSummary) string {
	if m.Mode == Baseline {
		return "—"
	}
	if math.IsNaN(m.Diff) {
		return "n/a"
	}
	return pp(m.Diff)
}

// gainText renders a mode's gain: "—" for the baseline itself, "n/a"
// where undefined, else a signed percentage.
func gainText(m ModeSummary) string {
	if m.Mode == Baseline {
		return "—"
	}
	if math.IsNaN(m.Gain) || math.IsInf(m.Gain, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", 100*m.Gain)
}

// signedPct renders a gain as a signed percentage, "n/a" when undefined.
func signedPct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", 100*x)
}

// intervalText renders a gain interval, "n/a" when it could not be
// estimated.
func intervalText(iv Interval) string {
	if math.IsNaN(iv.Low) || math.IsNaN(iv.High) {
		return "n/a"
	}
	return "[" + signedPct(iv.Low) + ", " + signedPct(iv.High) + "]"
}

// pValue renders a p-value with the precision that matters.
func pValue(p float64) string {
	if p < 0.001 {
		return "< 0.001"
	}
	return fmt.Sprintf("%.3f", p)
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

// cell makes a mode name safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}
