package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteMarkdown renders the summary as Markdown tables: accuracy per mode
// (flexible and strict, with 95% Wilson intervals, gain over the baseline
// on paired items, mean F1, tokens and seconds per item), the paired
// comparison of each mode with the baseline (discordant pairs, bootstrap
// interval of the gain, McNemar p), and accuracy per number of steps.
func WriteMarkdown(w io.Writer, s Summary) error {
	ew := &errWriter{w: w}
	if len(s.Modes) == 0 {
		ew.printf("_No results._\n")
		return ew.err
	}
	ew.printf("## Accuracy by mode\n\n")
	ew.printf("| Mode | N | Correct | Accuracy | 95%% CI | Strict | Strict 95%% CI | Gain vs %s | Mean F1 | Mean tokens | Mean seconds |\n", Baseline)
	ew.printf("|:-----|--:|--:|--:|:--|--:|:--|--:|--:|--:|--:|\n")
	for _, m := range s.Modes {
		ew.printf("| %s | %d | %d | %s | [%s, %s] | %s | [%s, %s] | %s | %.3f | %.1f | %.2f |\n",
			cell(m.Mode), m.N, m.Correct, pct(m.Accuracy), pct(m.CI.Low), pct(m.CI.High),
			pct(m.StrictAccuracy), pct(m.StrictCI.Low), pct(m.StrictCI.High),
			gainText(m), m.MeanF1, m.MeanTokens, m.MeanSeconds)
	}
	ew.printf("\nAccuracy is flexible (the answer marker, else fallbacks such as the last number); ")
	ew.printf("strict counts only answers given in the format the prompt asked for. ")
	ew.printf("Gains are on the items answered in both modes.\n")
	if !s.HasBaseline {
		ew.printf("\nNo %q mode in the results, so gains are n/a.\n", Baseline)
	}
	if len(s.Paired) > 0 {
		ew.printf("\n## Paired comparison with %s\n\n", Baseline)
		if s.Unequal {
			ew.printf("The modes did not all answer the same items: each row compares on the items both answered.\n\n")
		}
		ew.printf("| Mode | Paired items | %s correct | Mode correct | Only %s right | Only mode right | Gain | 95%% CI (paired bootstrap) | McNemar p |\n", Baseline, Baseline)
		ew.printf("|:-----|--:|--:|--:|--:|--:|--:|:--|--:|\n")
		for _, p := range s.Paired {
			ew.printf("| %s | %d | %d | %d | %d | %d | %s | %s | %s |\n", cell(p.Mode), p.N, p.BaseCorrect, p.Correct,
				p.OnlyBase, p.OnlyMode, signedPct(p.Gain), intervalText(p.GainCI), pValue(p.PValue))
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
