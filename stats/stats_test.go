package stats

import (
	"math"
	"testing"
)

// TestMcNemarExact checks exact p-values against values computed by hand
// from the binomial distribution.
func TestMcNemarExact(t *testing.T) {
	cases := []struct {
		b, c int
		want float64
	}{
		{0, 0, 1},
		{5, 5, 1},
		{0, 5, 2.0 / 32},              // 2 * 0.5^5
		{1, 9, 2 * 11.0 / 1024},       // 2 * (1 + 10) / 2^10
		{2, 10, 2 * 79.0 / 4096},      // 2 * (1 + 12 + 66) / 2^12
		{10, 2, 2 * 79.0 / 4096},      // symmetric
		{0, 60, 2 * math.Pow(.5, 60)}, // tiny, not zero
	}
	for _, c := range cases {
		if got := McNemarExact(c.b, c.c); math.Abs(got-c.want) > 1e-12*math.Max(1, c.want) && math.Abs(got-c.want)/c.want > 1e-9 {
			t.Errorf("McNemarExact(%d, %d) = %g, want %g", c.b, c.c, got, c.want)
		}
	}
}

func TestWilson(t *testing.T) {
	if w := Wilson(50, 100, Z95); math.Abs(w.Low-0.4038) > 1e-3 || math.Abs(w.High-0.5962) > 1e-3 {
		t.Errorf("Wilson(50, 100) = %+v, want [0.4038, 0.5962]", w)
	}
	if w := Wilson(0, 10, Z95); w.Low != 0 || math.Abs(w.High-0.2775) > 1e-3 {
		t.Errorf("Wilson(0, 10) = %+v", w)
	}
	if w := Wilson(0, 0, Z95); w != (Interval{0, 1}) {
		t.Errorf("Wilson with no items = %+v, want [0, 1]", w)
	}
}
