package tiny

import "hash/fnv"

// rng is splitmix64: tiny, fast and fully specified, so weights are the same
// on every platform and Go version (math/rand's streams are not promised to
// stay fixed).
type rng struct{ state uint64 }

// newRNG derives an independent stream for one tensor from the seed and a
// label, so each tensor's values do not depend on which others exist.
func newRNG(seed uint64, label string) *rng {
	h := fnv.New64a()
	h.Write([]byte(label))
	r := &rng{state: seed ^ h.Sum64()}
	r.next() // decorrelate seeds that differ in few bits
	return r
}

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// irwinHallStd is the standard deviation of the sum of four independent
// uniform integers in [0, 65535]: 65536/sqrt(3) (up to a negligible term).
const irwinHallStd = 37837.22339432141

// normals returns n bell-shaped values with mean 0 and the given standard
// deviation. Each value is the centred sum of four 16-bit uniforms (an
// Irwin–Hall approximation of a normal, bounded at about ±3.5 std). Only
// integer arithmetic and one float multiplication are involved, so the
// result is bit-identical everywhere, unlike a Box–Muller transform through
// math.Log and math.Cos.
func normals(r *rng, n int, std float64) []float32 {
	scale := std / irwinHallStd
	out := make([]float32, n)
	for i := range out {
		x := r.next()
		sum := int64(x&0xffff) + int64(x>>16&0xffff) + int64(x>>32&0xffff) + int64(x>>48)
		out[i] = float32(float64(sum-2*65535) * scale)
	}
	return out
}
