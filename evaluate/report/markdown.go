package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteMarkdown renders the summary as two Markdown tables: accuracy per
// mode (with 95% Wilson interval, gain over the baseline, mean F1, tokens
// and seconds per item) and accuracy per number of steps (only when some
// items have a known step count).
func WriteMarkdown(w io.Writer, s Summary) error {
	ew := &errWriter{w: w}
	if len(s.Modes) == 0 {
		ew.printf("_No results._\n")
		return ew.err
	}
	ew.printf("## Accuracy by mode\n\n")
	ew.printf("| Mode | N | Correct | Accuracy | 95%% CI | Gain vs %s | Mean F1 | Mean tokens | Mean seconds |\n", Baseline)
	ew.printf("|:-----|--:|--:|--:|:--|--:|--:|--:|--:|\n")
	for _, m := range s.Modes {
		ew.printf("| %s | %d | %d | %s | [%s, %s] | %s | %.3f | %.1f | %.2f |\n",
			cell(m.Mode), m.N, m.Correct, pct(m.Accuracy), pct(m.CI.Low), pct(m.CI.High),
			gainText(m), m.MeanF1, m.MeanTokens, m.MeanSeconds)
	}
	if !s.HasBaseline {
		ew.printf("\nNo %q mode in the results, so gains are n/a.\n", Baseline)
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
