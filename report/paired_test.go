package report

import (
	"math"
	"testing"
)

func TestMcNemarExact(t *testing.T) {
	cases := []struct {
		b, c int
		want float64
	}{
		{0, 0, 1},
		{0, 3, 0.25},                  // 2 · 0.5^3
		{1, 9, 2 * 11.0 / 1024},       // 2 · (C(10,0)+C(10,1)) / 2^10
		{5, 5, 1},                     // capped at 1
		{2, 8, 2 * 56.0 / 1024},       // 2 · (1+10+45) / 2^10
		{20, 40, 0.01348929373119186}, // 2 · Σ_{i≤20} C(60,i) / 2^60, computed exactly
	}
	for _, c := range cases {
		if got := McNemarExact(c.b, c.c); math.Abs(got-c.want) > 1e-8 {
			t.Errorf("McNemarExact(%d, %d) = %.10f, want %.10f", c.b, c.c, got, c.want)
		}
		if McNemarExact(c.b, c.c) != McNemarExact(c.c, c.b) {
			t.Errorf("McNemarExact(%d, %d) is not symmetric", c.b, c.c)
		}
	}
}

// TestPairedOnlyOnSharedItems checks that a mode that finished fewer items
// is compared on the intersection, and that the bootstrap interval is
// reproducible and brackets the point estimate.
func TestPairedOnlyOnSharedItems(t *testing.T) {
	var rs []Result
	for i := range 40 {
		id := string(rune('A'+i/26)) + string(rune('a'+i%26))
		rs = append(rs, Result{Mode: "direct", ItemID: id, Correct: i%2 == 0})
		if i < 30 { // codeplan has not finished the last 10 items
			rs = append(rs, Result{Mode: "codeplan", ItemID: id, Correct: i%2 == 0 || i%3 == 0})
		}
	}
	s := Summarize(rs)
	p, ok := s.PairedWith("codeplan")
	if !ok || p.N != 30 || !s.Unequal {
		t.Fatalf("paired %+v, unequal %v", p, s.Unequal)
	}
	// On items 0..29: direct right on the 15 even ones; codeplan also on
	// odd multiples of 3 (3, 9, 15, 21, 27).
	if p.BaseCorrect != 15 || p.Correct != 20 || p.OnlyMode != 5 || p.OnlyBase != 0 {
		t.Fatalf("paired %+v", p)
	}
	if math.Abs(p.Gain-1.0/3) > 1e-12 || s.Modes[1].Gain != p.Gain {
		t.Errorf("gain %v (mode summary %v), want 1/3 on the paired items", p.Gain, s.Modes[1].Gain)
	}
	if !(p.GainCI.Low <= p.Gain && p.Gain <= p.GainCI.High) || p.GainCI.Low < 0 {
		t.Errorf("bootstrap interval %+v does not bracket %v (the mode never loses an item, so no resample has a negative gain)", p.GainCI, p.Gain)
	}
	if again, _ := Summarize(rs).PairedWith("codeplan"); again.GainCI != p.GainCI {
		t.Errorf("bootstrap not reproducible: %+v vs %+v", again.GainCI, p.GainCI)
	}
	if math.Abs(p.PValue-McNemarExact(0, 5)) > 1e-15 {
		t.Errorf("p = %v", p.PValue)
	}
}
