package report

import (
	"bytes"
	"math"
	"strings"
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

// TestNewcombePaired checks the paired-difference interval: at 0% in both
// modes it is the Wilson half-width on either side (defined where a
// bootstrap would give [0, 0]); at large n it agrees with the Wald paired
// interval; it always brackets the point estimate and stays in [−1, 1].
func TestNewcombePaired(t *testing.T) {
	zero := NewcombePaired(0, 0, 0, 10)
	w := Wilson(0, 10, Z95)
	if math.Abs(zero.Low+w.High) > 1e-12 || math.Abs(zero.High-w.High) > 1e-12 {
		t.Errorf("0/10 vs 0/10: %+v, want ±%v", zero, w.High)
	}
	// n = 1000: a = 300 both right, b = 150 only the mode, c = 100 only
	// the baseline. Wald: (b−c)/n ± 1.96·sqrt((b+c) − (b−c)²/n)/n.
	a, b, c, d := 300, 150, 100, 450
	n := float64(a + b + c + d)
	diff := float64(b-c) / n
	half := Z95 * math.Sqrt(float64(b+c)-float64((b-c)*(b-c))/n) / n
	got := NewcombePaired(a, b, c, d)
	if math.Abs(got.Low-(diff-half)) > 0.002 || math.Abs(got.High-(diff+half)) > 0.002 {
		t.Errorf("n=1000: %+v, want about [%v, %v]", got, diff-half, diff+half)
	}
	for _, tc := range [][4]int{{0, 5, 0, 0}, {5, 0, 0, 0}, {0, 0, 5, 0}, {3, 1, 0, 2}, {0, 1, 1, 0}, {7, 0, 3, 1}} {
		iv := NewcombePaired(tc[0], tc[1], tc[2], tc[3])
		nn := float64(tc[0] + tc[1] + tc[2] + tc[3])
		theta := float64(tc[1]-tc[2]) / nn
		if !(iv.Low <= theta && theta <= iv.High) || iv.Low < -1 || iv.High > 1 || iv.Low == iv.High {
			t.Errorf("table %v: interval %+v for difference %v", tc, iv, theta)
		}
	}
	// A table of 44 pairs (12 both right, 9 only the mode, 2 only the
	// baseline, 21 neither), computed independently with the formula of R's
	// MKinfer::binomDiffCI(paired = TRUE) (corrected phi): [0.01124, 0.29537].
	if iv := NewcombePaired(12, 9, 2, 21); math.Abs(iv.Low-0.011243) > 1e-5 || math.Abs(iv.High-0.295372) > 1e-5 {
		t.Errorf("12/9/2/21: %+v, want [0.011243, 0.295372]", iv)
	}
	// 3 discordant pairs, all for the mode, among 8: McNemar's exact p is
	// 0.25, and the interval, with phi corrected, includes 0 as well.
	if iv := NewcombePaired(4, 3, 0, 1); !(iv.Low < 0 && iv.High > 0.375) {
		t.Errorf("4/3/0/1: %+v, want it to include 0", iv)
	}
	if iv := NewcombePaired(0, 0, 0, 0); !math.IsNaN(iv.Low) {
		t.Errorf("no pairs: %+v, want NaN", iv)
	}
}

// tenItems makes n items in each of the given modes; correct[mode][i]
// says whether mode got item i right (strict = correct unless noted).
func tenItems(modes map[string][]bool) []Result {
	var rs []Result
	for _, mode := range []string{"direct", "nlplan", "codeplan"} {
		for i, ok := range modes[mode] {
			rs = append(rs, Result{Mode: mode, ItemID: string(rune('a' + i)), Correct: ok, Strict: ok})
		}
	}
	return rs
}

// TestRelativeIntervalUndefined is the case: direct right on 1 of
// 10 items. About 0.9^10 = 35% of the resamples have no correct direct
// item; the relative gain's interval is then undefined (and said so),
// while the absolute difference and its interval are given.
func TestRelativeIntervalUndefined(t *testing.T) {
	f, x := false, true
	s := Summarize(tenItems(map[string][]bool{
		"direct":   {x, f, f, f, f, f, f, f, f, f},
		"codeplan": {x, x, x, f, f, f, f, f, f, f},
	}))
	p, ok := s.PairedWith("codeplan")
	if !ok {
		t.Fatal("no paired comparison")
	}
	if math.Abs(p.Gain-2) > 1e-12 || math.Abs(p.Diff-0.2) > 1e-12 {
		t.Errorf("gain %v, difference %v; want 2 and 0.2", p.Gain, p.Diff)
	}
	if !math.IsNaN(p.GainCI.Low) || p.GainUndefined < 600 || p.GainUndefined > 800 {
		t.Errorf("relative interval %+v with %d undefined resamples; want NaN with about 700 of 2000", p.GainCI, p.GainUndefined)
	}
	if math.IsNaN(p.DiffCI.Low) || !(p.DiffCI.Low < 0.2 && 0.2 < p.DiffCI.High) {
		t.Errorf("difference interval %+v does not bracket 0.2", p.DiffCI)
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, s); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{"+20.0 pp [", "+200.0% [undefined: direct had no correct item in ", "| +20.0 pp | +200.0% |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// With a baseline right on half the items about 0.1% of the
	// resamples have none right: they count as unbounded, at the top, and
	// the interval is defined.
	half := Summarize(tenItems(map[string][]bool{
		"direct":   {x, x, x, x, x, f, f, f, f, f},
		"codeplan": {x, x, x, x, x, x, f, f, f, f},
	}))
	if p, _ := half.PairedWith("codeplan"); p.GainUndefined > 10 || math.IsNaN(p.GainCI.Low) || !(p.GainCI.Low <= p.Gain && p.Gain <= p.GainCI.High) {
		t.Errorf("5/10 baseline: %+v", p)
	}
}

// TestPlanVsPlanAndStrict checks the comparison of code plans with NL
// plans (the paper's second claim) and that strict accuracy gets paired
// comparisons of its own, from the strict verdicts.
func TestPlanVsPlanAndStrict(t *testing.T) {
	var rs []Result
	for i := range 12 {
		id := string(rune('a' + i))
		rs = append(rs,
			Result{Mode: "direct", ItemID: id, Correct: i < 4, Strict: i < 2},
			Result{Mode: "nlplan", ItemID: id, Correct: i < 6, Strict: i < 6},
			// codeplan: right on 0..8; strictly only on 0..2 (the rest
			// were read off a fallback such as the last number).
			Result{Mode: "codeplan", ItemID: id, Correct: i < 9, Strict: i < 3})
	}
	s := Summarize(rs)
	cn, ok := s.Comparison("codeplan", "nlplan", false)
	if !ok || cn.N != 12 || cn.BaseCorrect != 6 || cn.Correct != 9 || cn.OnlyMode != 3 || cn.OnlyBase != 0 {
		t.Fatalf("codeplan vs nlplan: %+v", cn)
	}
	if math.Abs(cn.Gain-0.5) > 1e-12 || math.Abs(cn.PValue-McNemarExact(0, 3)) > 1e-15 {
		t.Errorf("codeplan vs nlplan: gain %v, p %v", cn.Gain, cn.PValue)
	}
	st, ok := s.Comparison("codeplan", "direct", true)
	if !ok || !st.Strict || st.BaseCorrect != 2 || st.Correct != 3 || math.Abs(st.Gain-0.5) > 1e-12 {
		t.Errorf("strict codeplan vs direct: %+v", st)
	}
	sn, ok := s.Comparison("codeplan", "nlplan", true)
	if !ok || sn.BaseCorrect != 6 || sn.Correct != 3 || sn.OnlyBase != 3 || math.Abs(sn.Diff+0.25) > 1e-12 {
		t.Errorf("strict codeplan vs nlplan: %+v", sn)
	}
	if len(s.Paired) != 3 || len(s.StrictPaired) != 3 {
		t.Errorf("%d flexible and %d strict comparisons, want 3 each (2 vs direct, codeplan vs nlplan)", len(s.Paired), len(s.StrictPaired))
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| codeplan vs nlplan | 12 | 6 | 9 | 0 | 3 |", "### Strict accuracy", "| codeplan vs nlplan | 12 | 6 | 3 | 3 | 0 | -25.0 pp ["} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestCannotRunItems checks that items that could not run are counted per
// mode, stay wrong in the accuracy, and are left out of the paired tests.
func TestCannotRunItems(t *testing.T) {
	var rs []Result
	for i := range 10 {
		id := string(rune('a' + i))
		rs = append(rs, Result{Mode: "direct", ItemID: id, Correct: i < 5})
		// codeplan could not run items 8 and 9 (its prompt is longer).
		rs = append(rs, Result{Mode: "codeplan", ItemID: id, Correct: i < 7, Error: i >= 8})
	}
	s := Summarize(rs)
	if s.Modes[1].Errors != 2 || s.Modes[1].N != 10 || s.Modes[1].Correct != 7 || s.Modes[0].Errors != 0 {
		t.Errorf("modes %+v", s.Modes)
	}
	p, _ := s.PairedWith("codeplan")
	if p.N != 8 || p.Excluded != 2 || p.BaseCorrect != 5 || p.Correct != 7 {
		t.Errorf("paired %+v: want 8 items, 2 excluded", p)
	}
	if s.Unequal {
		t.Error("both modes answered every item: Unequal should be false")
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"could not run (prompt longer than the context, or the context filled before the token limits): codeplan 2.", "| codeplan vs direct | 8 (2 could not run) |"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, buf.String())
		}
	}
}
