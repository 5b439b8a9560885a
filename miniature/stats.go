// Package miniature compares the arms of the CodePlan miniature
// (scripts/mini-replication.sh) item by item: accuracy with Wilson
// intervals, paired bootstrap intervals of accuracy differences and exact
// McNemar tests, overall and by number of steps k; how often generated
// plans equal the gold plan and how often a response follows its own plan;
// learning curves; and the held-out loss of a prompt-blind n-gram baseline.
package miniature

import (
	"math/rand/v2"
	"sort"
)

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
