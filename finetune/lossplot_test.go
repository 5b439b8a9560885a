package finetune

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestLossChartTicks checks the tickers behind the loss chart: whole steps
// on x, and y labels that stay distinct when the loss moves in the third
// decimal (a short run), where a fixed precision printed one value for all.
func TestLossChartTicks(t *testing.T) {
	xs := (wholeTicks{}).Ticks(0.5, 3.5)
	if len(xs) != 3 || xs[0].Label != "1" || xs[2].Label != "3" {
		t.Errorf("x ticks for 3 steps: %+v", xs)
	}
	for _, tk := range (wholeTicks{}).Ticks(-10, 2010) {
		if tk.Value != math.Trunc(tk.Value) || tk.Value < 0 {
			t.Errorf("fractional or negative step tick %v", tk.Value)
		}
	}
	// An axis padded to the left of step 0 ticks 0, never "-0".
	for _, r := range [][2]float64{{-0.5, 4.5}, {-0.2, 0.8}} {
		for _, tk := range (wholeTicks{}).Ticks(r[0], r[1]) {
			if tk.Label == "-0" || math.Signbit(tk.Value) {
				t.Errorf("range %v: tick %q (%v)", r, tk.Label, tk.Value)
			}
		}
	}
	for _, tk := range (decimalTicks{}).Ticks(-0.03, 0.1) {
		if tk.Label == "-0" || tk.Label == "-0.00" || tk.Label == "-0.0" {
			t.Errorf("y tick %q", tk.Label)
		}
	}
	for _, r := range [][2]float64{{8.2791, 8.2803}, {0.04, 8.3}, {2.5, 2.5000004}, {100, 4000}} {
		ys := (decimalTicks{}).Ticks(r[0], r[1])
		if len(ys) < 2 && r[1]-r[0] > 1e-6 {
			t.Errorf("range %v: only %d ticks", r, len(ys))
		}
		seen := map[string]bool{}
		for _, tk := range ys {
			if seen[tk.Label] {
				t.Errorf("range %v: label %q repeats: %+v", r, tk.Label, ys)
			}
			seen[tk.Label] = true
			if tk.Value < r[0]-1e-12 || tk.Value > r[1]+1e-9 {
				t.Errorf("range %v: tick %v outside", r, tk.Value)
			}
		}
	}
}

// TestLossChartFewSteps draws a 3-step run (the case whose ticks and first
// point were wrong) and checks that the picture decodes and that its left
// edge column (the first point's neighbourhood) is not cut by the frame.
func TestLossChartFewSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	pts := []logPoint{{step: 1, loss: 8.2803, evalLoss: math.NaN()}, {step: 2, loss: 8.2797, evalLoss: 8.2799}, {step: 3, loss: 8.2791, evalLoss: math.NaN()}}
	if err := plotLoss(path, pts, "3 steps"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("CODEPLAN_CHART_DIR"); dir != "" {
		plotLoss(filepath.Join(dir, "loss-3.png"), pts, "3 steps")
		var long []logPoint
		for i := 1; i <= 3000; i++ {
			ev := math.NaN()
			if i%300 == 0 {
				ev = 2 + 6/math.Sqrt(float64(i))
			}
			long = append(long, logPoint{step: i, loss: 1.8 + 6/math.Sqrt(float64(i)), evalLoss: ev})
		}
		plotLoss(filepath.Join(dir, "loss-3000.png"), long, "3000 steps")
	}
}
