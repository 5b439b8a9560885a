package synth

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// orderPeople is how many people an Order puzzle with k constraints has:
// enough that k constraints can all be needed, few enough to brute-force.
func orderPeople(k int) int {
	switch {
	case k <= 2:
		return 3
	case k <= 4:
		return 4
	case k <= 5:
		return 5
	case k <= 7:
		return 6
	}
	return 7
}

// orderAttempts bounds the search for a puzzle with exactly k necessary
// constraints; see genOrder.
const orderAttempts = 2000

// genOrder builds a line-up puzzle with exactly k constraints such that
// the person at the asked position is the same in every arrangement that
// satisfies them, and dropping any constraint breaks that. It draws a
// hidden arrangement, adds random true constraints that rule out some
// arrangement until the answer is fixed, prunes redundant constraints,
// and keeps the result when exactly k remain. If no attempt succeeds
// (not observed for k <= MaxSteps[Order]) it falls back to "X is in
// position q" padded with true but redundant constraints, so the answer
// stays unique.
func genOrder(r *rng, k int) problem {
	m := orderPeople(k)
	perms := permutations(m)
	var people []string
	var chosen []Constraint
	var q int
	var hidden arrangement
	for attempt := 0; attempt < orderAttempts; attempt++ {
		people = pickNames(r, m)
		hidden = perms[r.intn(len(perms))]
		q = r.between(1, m)
		cands := trueConstraints(hidden.pos, people)
		r.shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		index := make(map[string]int, m)
		for i, p := range people {
			index[p] = i
		}
		// Masks are computed lazily: the greedy pass usually stops long
		// before it has looked at every candidate.
		masks := make([]bitset, len(cands))
		var picked []int
		alive := fullSet(len(perms))
		for i := range cands {
			if uniqueAt(alive, perms, q) {
				break
			}
			masks[i] = satisfying(cands[i], perms, index)
			next := alive.and(masks[i])
			if next.count() < alive.count() {
				picked = append(picked, i)
				alive = next
			}
		}
		picked = prune(r, picked, masks, perms, q)
		chosen = chosen[:0]
		for _, i := range picked {
			chosen = append(chosen, cands[i])
		}
		if len(chosen) == k {
			break
		}
		if attempt == orderAttempts-1 {
			// Fall back to the one constraint that names the asked
			// position, padded with redundant true constraints.
			chosen = pad([]Constraint{{Name: "at", A: people[hidden.line[q-1]], N: q}}, k, cands)
		}
	}
	r.shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
	gold := people[hidden.line[q-1]]
	listed := append([]string(nil), people...)
	r.shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
	var b strings.Builder
	fmt.Fprintf(&b, "%d people stand in a line, in positions numbered 1 to %d from left to right: %s (in no particular order).", m, m, strings.Join(listed, ", "))
	for _, c := range chosen {
		b.WriteString(" " + constraintText(c))
	}
	fmt.Fprintf(&b, " Who is in position %d?", q)
	prog := Program{People: listed, Constraints: chosen, Position: q}
	return problem{question: b.String(), gold: gold, kind: answer.Exact, program: prog}
}

// pad adds true constraints not yet used until there are k.
func pad(chosen []Constraint, k int, cands []Constraint) []Constraint {
	used := map[Constraint]bool{}
	for _, c := range chosen {
		used[c] = true
	}
	for _, c := range cands {
		if len(chosen) >= k {
			break
		}
		if !used[c] {
			chosen = append(chosen, c)
		}
	}
	return chosen
}

// prune drops picked constraints, in random order, whose removal keeps
// the answer unique. What remains is minimal: each constraint is needed,
// since needing one only gets truer as others are removed.
func prune(r *rng, picked []int, masks []bitset, perms []arrangement, q int) []int {
	order := make([]int, len(picked))
	for i := range order {
		order[i] = i
	}
	r.shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	dropped := make([]bool, len(picked))
	for _, i := range order {
		dropped[i] = true
		alive := fullSet(len(perms))
		for j, c := range picked {
			if !dropped[j] {
				alive = alive.and(masks[c])
			}
		}
		if !uniqueAt(alive, perms, q) {
			dropped[i] = false
		}
	}
	var out []int
	for i, c := range picked {
		if !dropped[i] {
			out = append(out, c)
		}
	}
	return out
}

// bitset is a set of arrangement numbers.
type bitset []uint64

func fullSet(n int) bitset {
	b := make(bitset, (n+63)/64)
	for i := 0; i < n; i++ {
		b[i/64] |= 1 << (i % 64)
	}
	return b
}

func (b bitset) and(o bitset) bitset {
	out := make(bitset, len(b))
	for i := range b {
		out[i] = b[i] & o[i]
	}
	return out
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// satisfying returns the set of arrangements on which c holds.
func satisfying(c Constraint, perms []arrangement, index map[string]int) bitset {
	b := make(bitset, (len(perms)+63)/64)
	for i, p := range perms {
		if holds(c, p, index) {
			b[i/64] |= 1 << (i % 64)
		}
	}
	return b
}

// trueConstraints lists every constraint the arrangement satisfies.
// pos[i] is the 1-based position of person i.
func trueConstraints(pos []int, people []string) []Constraint {
	m := len(pos)
	var out []Constraint
	for a := 0; a < m; a++ {
		A := people[a]
		for p := 1; p <= m; p++ {
			if pos[a] == p {
				out = append(out, Constraint{Name: "at", A: A, N: p})
			} else {
				out = append(out, Constraint{Name: "not_at", A: A, N: p})
			}
		}
		if pos[a] == 1 || pos[a] == m {
			out = append(out, Constraint{Name: "end", A: A})
		}
		for b := 0; b < m; b++ {
			if a == b {
				continue
			}
			B := people[b]
			d := pos[b] - pos[a]
			if d > 0 {
				out = append(out, Constraint{Name: "left_of", A: A, B: B})
			} else {
				out = append(out, Constraint{Name: "right_of", A: A, B: B})
			}
			if d == 1 {
				out = append(out, Constraint{Name: "next_to", A: A, B: B})
			}
			if a < b {
				switch {
				case d == 1 || d == -1:
					out = append(out, Constraint{Name: "adjacent", A: A, B: B})
				default:
					out = append(out, Constraint{Name: "not_adjacent", A: A, B: B})
					out = append(out, Constraint{Name: "gap", A: A, B: B, N: abs(d) - 1})
				}
			}
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// arrangement is one candidate line-up: line[i] is the person at position
// i+1 and pos[p] the 1-based position of person p (kept both ways so that
// constraints are checked in constant time).
type arrangement struct {
	line, pos []int
}

// holds evaluates a constraint on an arrangement; index maps names to
// person numbers.
func holds(c Constraint, a arrangement, index map[string]int) bool {
	pa, pb := a.pos[index[c.A]], 0
	if c.B != "" {
		pb = a.pos[index[c.B]]
	}
	switch c.Name {
	case "at":
		return pa == c.N
	case "not_at":
		return pa != c.N
	case "end":
		return pa == 1 || pa == len(a.line)
	case "left_of":
		return pa < pb
	case "right_of":
		return pa > pb
	case "next_to":
		return pb == pa+1
	case "adjacent":
		return abs(pa-pb) == 1
	case "not_adjacent":
		return abs(pa-pb) != 1
	case "gap":
		return abs(pa-pb)-1 == c.N
	}
	return false
}

// uniqueAt reports whether all arrangements in alive put the same person
// at position q (and there is at least one).
func uniqueAt(alive bitset, perms []arrangement, q int) bool {
	who := -1
	for w, word := range alive {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if who < 0 {
				who = perms[i].line[q-1]
			} else if perms[i].line[q-1] != who {
				return false
			}
		}
	}
	return who >= 0
}

// permutations returns all arrangements of m people in lexicographic
// order of their lines.
func permutations(m int) []arrangement {
	var out []arrangement
	cur := make([]int, 0, m)
	used := make([]bool, m)
	var rec func()
	rec = func() {
		if len(cur) == m {
			line := append([]int(nil), cur...)
			pos := make([]int, m)
			for i, p := range line {
				pos[p] = i + 1
			}
			out = append(out, arrangement{line: line, pos: pos})
			return
		}
		for i := 0; i < m; i++ {
			if !used[i] {
				used[i] = true
				cur = append(cur, i)
				rec()
				cur = cur[:len(cur)-1]
				used[i] = false
			}
		}
	}
	rec()
	return out
}

// constraintText renders a constraint as an English sentence.
func constraintText(c Constraint) string {
	switch c.Name {
	case "at":
		return fmt.Sprintf("%s is in position %d.", c.A, c.N)
	case "not_at":
		return fmt.Sprintf("%s is not in position %d.", c.A, c.N)
	case "end":
		return fmt.Sprintf("%s is at one of the two ends of the line.", c.A)
	case "left_of":
		return fmt.Sprintf("%s is somewhere to the left of %s.", c.A, c.B)
	case "right_of":
		return fmt.Sprintf("%s is somewhere to the right of %s.", c.A, c.B)
	case "next_to":
		return fmt.Sprintf("%s is immediately to the left of %s.", c.A, c.B)
	case "adjacent":
		return fmt.Sprintf("%s and %s stand next to each other.", c.A, c.B)
	case "not_adjacent":
		return fmt.Sprintf("%s and %s do not stand next to each other.", c.A, c.B)
	case "gap":
		if c.N == 1 {
			return fmt.Sprintf("There is exactly 1 person between %s and %s.", c.A, c.B)
		}
		return fmt.Sprintf("There are exactly %d people between %s and %s.", c.N, c.A, c.B)
	}
	return ""
}
