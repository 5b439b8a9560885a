package dataset

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// ShardSpec selects shard K of N (1-based). The zero value and N <= 1 keep
// every row, so "no sharding" needs no special case in callers.
type ShardSpec struct {
	K, N int
}

// ParseShard parses "K/N", e.g. "2/8" for the second of eight shards. The
// empty string means no sharding (1/1). K may also be written "I+1" (any sum
// of two whole numbers), so that a 0-based index from a job system fills it
// in without a shell to do the arithmetic: a Kubernetes Indexed Job passes
// "$(JOB_COMPLETION_INDEX)+1/8" straight from its args, in an image that
// holds no shell.
func ParseShard(s string) (ShardSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ShardSpec{K: 1, N: 1}, nil
	}
	ks, ns, ok := strings.Cut(s, "/")
	if !ok {
		return ShardSpec{}, fmt.Errorf("shard %q: want K/N, e.g. 2/8 for the second of eight shards", s)
	}
	k, err := parseSum(ks)
	if err != nil {
		return ShardSpec{}, fmt.Errorf("shard %q: K is not a whole number (or I+1 for a 0-based index I)", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil {
		return ShardSpec{}, fmt.Errorf("shard %q: N is not a whole number", s)
	}
	if n < 1 {
		return ShardSpec{}, fmt.Errorf("shard %q: N must be at least 1", s)
	}
	if k < 1 || k > n {
		return ShardSpec{}, fmt.Errorf("shard %q: K must be between 1 and %d (shards are numbered from 1)", s, n)
	}
	return ShardSpec{K: k, N: n}, nil
}

// parseSum reads a whole number or a sum of two, e.g. "3" or "2+1".
func parseSum(s string) (int, error) {
	a, b, plus := strings.Cut(s, "+")
	x, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil || !plus {
		return x, err
	}
	y, err := strconv.Atoi(strings.TrimSpace(b))
	if err != nil || x < 0 || y < 0 {
		return 0, fmt.Errorf("%q: want A+B with whole numbers A, B >= 0", s)
	}
	return x + y, nil
}

// String formats the spec as "K/N".
func (s ShardSpec) String() string {
	if s.N <= 1 {
		return "1/1"
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// Keep reports whether the row with this id belongs to the shard. It depends
// only on the id, so N workers partition a corpus exactly whatever order they
// read it in, and a rerun keeps the same rows. Changing this hash would
// reassign rows between shards of a run in progress, so it must stay fixed.
func (s ShardSpec) Keep(id string) bool {
	if s.N <= 1 {
		return true
	}
	return int(shardHash(id)%uint64(s.N)) == s.K-1
}

// shardHash is FNV-1a followed by a splitmix64 finalizer: FNV alone leaves
// the low bits of similar ids (counters, hex hashes) poorly mixed, which
// would unbalance shards for small N.
func shardHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
