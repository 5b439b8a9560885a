package report

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Paired compares one mode with the Baseline on the items that both
// answered, which is the only fair comparison when some modes finished
// fewer items (an interrupted run, a shard still missing): every figure
// here is computed on the same items for both modes.
type Paired struct {
	Mode string
	// N is the number of items answered in both modes.
	N int
	// BaseCorrect and Correct count the right answers of the baseline and
	// of Mode on those items.
	BaseCorrect, Correct int
	// OnlyBase counts items the baseline got right and Mode wrong;
	// OnlyMode the reverse. McNemar's test uses only these discordant
	// pairs.
	OnlyBase, OnlyMode int
	// Gain is RelativeGain(Correct/N, BaseCorrect/N): NaN when the
	// baseline got nothing right.
	Gain float64
	// GainCI is a 95% paired-bootstrap percentile interval of Gain (items
	// resampled with replacement, BootstrapRounds rounds, fixed seed);
	// NaN bounds when it cannot be estimated.
	GainCI Interval
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

// pairs lists, for the items answered in both modes, whether the baseline
// and the mode were right, in item order of first appearance.
func pairs(base, mode map[string]bool, order []string) (b, m []bool) {
	for _, id := range order {
		bc, ok1 := base[id]
		mc, ok2 := mode[id]
		if ok1 && ok2 {
			b = append(b, bc)
			m = append(m, mc)
		}
	}
	return b, m
}

// comparePaired computes a Paired from aligned verdicts.
func comparePaired(mode string, base, other []bool) Paired {
	p := Paired{Mode: mode, N: len(base), Gain: math.NaN(), GainCI: Interval{math.NaN(), math.NaN()}, PValue: 1}
	for i := range base {
		if base[i] {
			p.BaseCorrect++
		}
		if other[i] {
			p.Correct++
		}
		switch {
		case base[i] && !other[i]:
			p.OnlyBase++
		case other[i] && !base[i]:
			p.OnlyMode++
		}
	}
	if p.N == 0 {
		return p
	}
	p.Gain = RelativeGain(float64(p.Correct)/float64(p.N), float64(p.BaseCorrect)/float64(p.N))
	p.PValue = McNemarExact(p.OnlyBase, p.OnlyMode)
	p.GainCI = bootstrapGain(base, other)
	return p
}

// bootstrapGain is the 95% percentile interval of the relative gain over
// BootstrapRounds paired resamples. Resamples whose baseline accuracy is 0
// have no gain and are skipped; with fewer than half the rounds usable the
// interval is NaN.
func bootstrapGain(base, other []bool) Interval {
	n := len(base)
	rng := rand.New(rand.NewPCG(bootstrapSeed, uint64(n)))
	gains := make([]float64, 0, BootstrapRounds)
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
		if b > 0 {
			gains = append(gains, float64(m-b)/float64(b))
		}
	}
	if len(gains) < BootstrapRounds/2 {
		return Interval{math.NaN(), math.NaN()}
	}
	slices.Sort(gains)
	return Interval{Low: quantile(gains, 0.025), High: quantile(gains, 0.975)}
}

// quantile is the q-quantile of sorted xs by linear interpolation.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}

// McNemarExact is the two-sided exact McNemar p-value for b and c
// discordant pairs: under the null each discordant pair goes either way
// with probability 1/2, so p = min(1, 2·P(X ≤ min(b, c))) for X ~
// Binomial(b+c, 1/2).
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
