package synth

import "hash/fnv"

// rng is a SplitMix64 generator. The generator is written out here rather
// than taken from math/rand so that a seed gives the same problems on
// every Go version: benchmark files made today must be reproducible later.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform integer in [0, n) without modulo bias; n <= 0
// gives 0.
func (r *rng) intn(n int) int {
	if n <= 1 {
		return 0
	}
	bound := uint64(n)
	threshold := -bound % bound
	for {
		if x := r.next(); x >= threshold {
			return int(x % bound)
		}
	}
}

// between returns a uniform integer in [lo, hi]; hi < lo gives lo.
func (r *rng) between(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + r.intn(hi-lo+1)
}

// shuffle permutes n elements through swap (Fisher-Yates).
func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

// itemRNG derives the generator of one item from the run seed and the
// item's coordinates, so that an item depends only on (seed, kind, k,
// index): asking for more items, other step counts or other kinds never
// changes the items already generated.
func itemRNG(seed int64, kind Kind, k, index int) *rng {
	h := fnv.New64a()
	h.Write([]byte(kind))
	r := &rng{state: uint64(seed)}
	r.state ^= h.Sum64()
	r.next()
	r.state ^= uint64(k)*0x100000001b3 + uint64(index)*0xc6a4a7935bd1e995
	r.next()
	return r
}
