// Package miniature compares the arms of the CodePlan miniature
// (scripts/mini-replication.sh) item by item: accuracy with Wilson
// intervals, paired bootstrap intervals of accuracy differences and exact
// McNemar tests, overall and by number of steps k; how often generated
// plans equal the gold plan and how often a response follows its own plan;
// learning curves; and the held-out loss of a prompt-blind n-gram baseline.
package miniature

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Wilson returns the 95% Wilson score interval of k successes in n.
func Wilson(k, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	return max(0, c-h), min(1, c+h)
}

// McNemar returns the two-sided exact McNemar p-value for b items right
// only under the first arm and c right only under the second: twice the
// binomial(b+c, 1/2) tail of the smaller count, at most 1.
func McNemar(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	k := min(b, c)
	// log C(n, i) summed in log space: n can be hundreds.
	tail := 0.0
	for i := 0; i <= k; i++ {
		lg := lgamma(n+1) - lgamma(i+1) - lgamma(n-i+1) - float64(n)*math.Ln2
		tail += math.Exp(lg)
	}
	return min(1, 2*tail)
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}

// Bootstrap returns the mean difference a−b of paired 0/1 outcomes and its
// 95% percentile interval over resamples of the items (with replacement),
// from a fixed seed so that reports are reproducible.
func Bootstrap(a, b []bool, resamples int, seed uint64) (diff, lo, hi float64) {
	n := len(a)
	if n == 0 || len(b) != n {
		return 0, 0, 0
	}
	d := make([]float64, n)
	sum := 0.0
	for i := range a {
		d[i] = b2f(a[i]) - b2f(b[i])
		sum += d[i]
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	means := make([]float64, resamples)
	for s := range means {
		t := 0.0
		for j := 0; j < n; j++ {
			t += d[r.IntN(n)]
		}
		means[s] = t / float64(n)
	}
	sort.Float64s(means)
	at := func(q float64) float64 { return means[min(resamples-1, int(q*float64(resamples)))] }
	return sum / float64(n), at(0.025), at(0.975)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
