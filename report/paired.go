package report

import (
	"github.com/codeplan-dev/codeplan/stats"
	"math"
	"math/rand/v2"
	"slices"
)

// PlanBaseline and PlanMode name the second comparison the paper makes:
// code-form plans against natural-language plans (codeplan vs nlplan).
const (
	PlanBaseline = "nlplan"
	PlanMode     = "codeplan"
)

// Paired compares one mode with a baseline mode on the items that both
// answered, which is the only fair comparison when some modes finished
// fewer items (an interrupted run, a shard still missing): every figure
// here is computed on the same items for both modes. Items that could not
// run in either mode (Result.Error) are left out as well: they say
// nothing about either mode's answers.
type Paired struct {
	Mode string
	// Base is the mode compared against: Baseline, or PlanBaseline for
	// the code plan vs NL plan comparison.
	Base string
	// Strict is true when the verdicts are strict accuracy (Result.Strict)
	// rather than flexible (Result.Correct).
	Strict bool
	// N is the number of items answered in both modes and run in both.
	N int
	// Excluded counts items answered in both modes but left out because
	// they could not run in at least one of them.
	Excluded int
	// BaseCorrect and Correct count the right answers of the baseline and
	// of Mode on those items.
	BaseCorrect, Correct int
	// OnlyBase counts items the baseline got right and Mode wrong;
	// OnlyMode the reverse. McNemar's test uses only these discordant
	// pairs.
	OnlyBase, OnlyMode int
	// Diff is the absolute accuracy difference (Correct − BaseCorrect)/N,
	// defined whenever N > 0.
	Diff float64
	// DiffCI is its 95% interval for paired proportions (Newcombe 1998,
	// method 10: Wilson intervals of both accuracies combined with the
	// correlation of the pairs). Always within [−1, 1] and defined for
	// N > 0, including at 0% and 100% accuracy; NaN bounds for N = 0.
	DiffCI Interval
	// Gain is RelativeGain(Correct/N, BaseCorrect/N): NaN when the
	// baseline got nothing right.
	Gain float64
	// GainCI is a 95% paired-bootstrap percentile interval of Gain (items
	// resampled with replacement, BootstrapRounds rounds, fixed seed). A
	// resample in which the baseline has no correct item has no finite
	// gain; it counts as unbounded instead of being dropped (which would
	// narrow the interval), and when such resamples reach the upper 2.5%
	// the interval is undefined: NaN bounds, with GainUndefined > 0.
	GainCI Interval
	// GainUndefined counts the resamples in which the baseline had no
	// correct item.
	GainUndefined int
	// PValue is the two-sided exact McNemar test of "Mode and the baseline
	// are equally accurate" (a binomial test on the discordant pairs);
	// 1 when there are none.
	PValue float64
}

// BootstrapRounds is the number of resamples behind Paired.GainCI. 2,000
// keeps the 2.5% and 97.5% percentiles stable to about a percentage point
// of gain while costing milliseconds for benchmarks of thousands of items.
const BootstrapRounds = 2000

// bootstrapSeed makes reports reproducible: the same results always give
// the same interval.
const bootstrapSeed = 20250125

// verdict is one item's outcome in one mode.
type verdict struct {
	correct, strict, err bool
}

// pairs lists, for the items answered in both modes, the verdicts of the
// baseline and the mode, in item order of first appearance, and counts
// the items left out because one side could not run.
func pairs(base, mode map[string]verdict, order []string) (b, m []verdict, excluded int) {
	for _, id := range order {
		bv, ok1 := base[id]
		mv, ok2 := mode[id]
		if !ok1 || !ok2 {
			continue
		}
		if bv.err || mv.err {
			excluded++
			continue
		}
		b = append(b, bv)
		m = append(m, mv)
	}
	return b, m, excluded
}

// comparePaired computes a Paired from aligned verdicts, under strict or
// flexible scoring.
func comparePaired(mode, baseMode string, strict bool, bv, mv []verdict, excluded int) Paired {
	base := make([]bool, len(bv))
	other := make([]bool, len(mv))
	for i := range bv {
		base[i], other[i] = bv[i].correct, mv[i].correct
		if strict {
			base[i], other[i] = bv[i].strict, mv[i].strict
		}
	}
	p := Paired{Mode: mode, Base: baseMode, Strict: strict, N: len(base), Excluded: excluded,
		Diff: math.NaN(), DiffCI: Interval{math.NaN(), math.NaN()},
		Gain: math.NaN(), GainCI: Interval{math.NaN(), math.NaN()}, PValue: 1}
	both := 0
	for i := range base {
		if base[i] {
			p.BaseCorrect++
		}
		if other[i] {
			p.Correct++
		}
		switch {
		case base[i] && other[i]:
			both++
		case base[i] && !other[i]:
			p.OnlyBase++
		case other[i] && !base[i]:
			p.OnlyMode++
		}
	}
	if p.N == 0 {
		return p
	}
	n := float64(p.N)
	p.Diff = float64(p.Correct-p.BaseCorrect) / n
	p.DiffCI = NewcombePaired(both, p.OnlyMode, p.OnlyBase, p.N-both-p.OnlyMode-p.OnlyBase)
	p.Gain = RelativeGain(float64(p.Correct)/n, float64(p.BaseCorrect)/n)
	p.PValue = McNemarExact(p.OnlyBase, p.OnlyMode)
	p.GainCI, p.GainUndefined = bootstrapGain(base, other)
	return p
}

// NewcombePaired is the 95% interval of p1 − p2 for paired proportions
// (Newcombe 1998, "Improved confidence intervals for the difference
// between binomial proportions based on paired data", method 10) from the
// 2×2 table of pairs: a both right, b only the first right, c only the
// second right, d neither. p1 = (a+b)/n is the mode's accuracy and
// p2 = (a+c)/n the baseline's. Each accuracy gets its Wilson interval;
// the two are combined with the phi correlation of the pairs (corrected
// as Newcombe recommends), so the interval is defined for every table with
// n > 0, stays within [−1, 1], and is not degenerate when there are no
// discordant pairs (a bootstrap would give [0, 0] there).
func NewcombePaired(a, b, c, d int) Interval {
	n := a + b + c + d
	if n == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	nf := float64(n)
	p1 := float64(a+b) / nf
	p2 := float64(a+c) / nf
	w1 := Wilson(a+b, n, Z95)
	w2 := Wilson(a+c, n, Z95)
	// phi, the correlation of the pairs, with Newcombe's correction: a
	// positive cross-product difference is reduced by n/2 (not below 0),
	// so that a few concordant pairs do not narrow the interval (as in
	// Altman et al., "Statistics with Confidence", and R's MKinfer).
	phi := 0.0
	if den := float64(a+b) * float64(c+d) * float64(a+c) * float64(b+d); den > 0 {
		cross := float64(a)*float64(d) - float64(b)*float64(c)
		if cross > 0 {
			cross = math.Max(cross-nf/2, 0)
		}
		phi = cross / math.Sqrt(den)
	}
	dl1, du1 := p1-w1.Low, w1.High-p1
	dl2, du2 := p2-w2.Low, w2.High-p2
	delta := math.Sqrt(math.Max(0, dl1*dl1-2*phi*dl1*du2+du2*du2))
	eps := math.Sqrt(math.Max(0, du1*du1-2*phi*du1*dl2+dl2*dl2))
	theta := p1 - p2
	return Interval{Low: math.Max(-1, theta-delta), High: math.Min(1, theta+eps)}
}

// bootstrapGain is the 95% percentile interval of the relative gain over
// BootstrapRounds paired resamples, and the number of resamples whose
// baseline had no correct item. Such a resample has no finite relative
// gain: it counts as unbounded, above every finite gain, rather than being
// dropped (dropping them conditions the interval on the baseline doing
// well, and narrows it). When they reach the upper 2.5% the upper bound is
// unbounded and the interval is NaN (undefined).
func bootstrapGain(base, other []bool) (Interval, int) {
	n := len(base)
	rng := rand.New(rand.NewPCG(bootstrapSeed, uint64(n)))
	gains := make([]float64, 0, BootstrapRounds)
	undefined := 0
	for range BootstrapRounds {
		var b, m int
		for range n {
			i := rng.IntN(n)
			if base[i] {
				b++
			}
			if other[i] {
				m++
			}
		}
		if b == 0 {
			undefined++
			continue
		}
		gains = append(gains, float64(m-b)/float64(b))
	}
	slices.Sort(gains)
	for range undefined {
		gains = append(gains, math.Inf(1))
	}
	lo, hi := quantile(gains, 0.025), quantile(gains, 0.975)
	if math.IsInf(lo, 0) || math.IsNaN(lo) || math.IsInf(hi, 0) || math.IsNaN(hi) {
		return Interval{math.NaN(), math.NaN()}, undefined
	}
	return Interval{Low: lo, High: hi}, undefined
}

// quantile is the q-quantile of sorted xs by linear interpolation; +Inf
// when it involves an infinite value.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) || pos == float64(i) {
		return xs[min(i, len(xs)-1)]
	}
	if math.IsInf(xs[i+1], 1) {
		return math.Inf(1)
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}

// McNemarExact is the two-sided exact McNemar p-value for b and c
// discordant pairs; see stats.McNemarExact.
func McNemarExact(b, c int) float64 { return stats.McNemarExact(b, c) }
