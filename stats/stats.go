// Package stats holds the few statistics that both the eval report
// (report/) and the miniature's arm comparison (miniature/) compute: the
// Wilson interval of an accuracy and the exact McNemar test of paired
// right/wrong outcomes. One implementation, so that the two reports can
// never disagree on the same counts.
package stats

import "math"

// Interval is a confidence interval.
type Interval struct {
	Low, High float64
}

// Z95 is the standard normal quantile for a two-sided 95% interval.
const Z95 = 1.959963984540054

// Wilson returns the Wilson score interval for correct successes out of
// n trials at normal quantile z (Z95 for 95%). Unlike the normal
// approximation it stays inside [0, 1] and is sensible at 0% and 100%
// accuracy, which small evaluations often hit. With n = 0 nothing is
// known and the interval is [0, 1].
func Wilson(correct, n int, z float64) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	nf := float64(n)
	p := float64(correct) / nf
	z2 := z * z
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / denom
	return Interval{Low: math.Max(0, center-half), High: math.Min(1, center+half)}
}

// McNemarExact is the two-sided exact McNemar p-value for b and c
// discordant pairs: under the null each discordant pair goes either way
// with probability 1/2, so p = min(1, 2·P(X ≤ min(b, c))) for X ~
// Binomial(b+c, 1/2). The binomial terms are summed in log space, so b + c
// may be in the thousands.
func McNemarExact(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	k := min(b, c)
	lgN, _ := math.Lgamma(float64(n + 1))
	tail := 0.0
	for i := 0; i <= k; i++ {
		lgI, _ := math.Lgamma(float64(i + 1))
		lgR, _ := math.Lgamma(float64(n - i + 1))
		tail += math.Exp(lgN - lgI - lgR - float64(n)*math.Ln2)
	}
	return math.Min(1, 2*tail)
}
