package synth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// listMaxLen bounds the list so that problems stay readable.
const listMaxLen = 12

// genList builds k list operations on a random list of 5 to 8 numbers.
// Each step picks uniformly among the operations that change the list
// and leave at least two elements, so that no step is a no-op.
func genList(r *rng, k int) problem {
	xs := make([]int, r.between(5, 8))
	for i := range xs {
		xs[i] = r.between(1, 30)
	}
	prog := Program{List: slices.Clone(xs)}
	var b strings.Builder
	fmt.Fprintf(&b, "Start with the list %s. Apply these operations in order:", formatList(xs))
	for i := 0; i < k; i++ {
		op, text, next := pickListOp(r, xs)
		xs = next
		prog.Ops = append(prog.Ops, op)
		fmt.Fprintf(&b, "\n%d. %s", i+1, text)
	}
	b.WriteString("\nWhat is the sum of the numbers in the final list?")
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return problem{question: b.String(), gold: strconv.Itoa(sum), kind: answer.Number, program: prog}
}

// pickListOp chooses one applicable operation and returns it, its
// instruction text and the resulting list.
func pickListOp(r *rng, xs []int) (Op, string, []int) {
	type cand struct {
		op   Op
		text string
		next []int
	}
	var cands []cand
	add := func(op Op, text string, next []int) {
		if len(next) >= 2 && !slices.Equal(next, xs) {
			cands = append(cands, cand{op, text, next})
		}
	}
	asc := slices.Clone(xs)
	slices.Sort(asc)
	add(Op{Name: "sort"}, "Sort the list in ascending order.", asc)
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	add(Op{Name: "sort_desc"}, "Sort the list in descending order.", desc)
	rev := slices.Clone(xs)
	slices.Reverse(rev)
	add(Op{Name: "reverse"}, "Reverse the list.", rev)
	if len(xs) >= 3 {
		n := r.between(2, len(xs)-1)
		add(Op{Name: "take", N: n}, fmt.Sprintf("Keep only the first %d numbers.", n), slices.Clone(xs[:n]))
		d := r.between(1, len(xs)-2)
		add(Op{Name: "drop", N: d}, fmt.Sprintf("Remove the first %d numbers.", d), slices.Clone(xs[d:]))
	}
	if len(xs) < listMaxLen {
		v := r.between(1, 30)
		add(Op{Name: "append", N: v}, fmt.Sprintf("Append %d to the end of the list.", v), append(slices.Clone(xs), v))
	}
	add(Op{Name: "keep_even"}, "Keep only the even numbers.", filter(xs, func(x int) bool { return x%2 == 0 }))
	add(Op{Name: "keep_odd"}, "Keep only the odd numbers.", filter(xs, func(x int) bool { return x%2 != 0 }))
	v := r.between(1, 9)
	plus := make([]int, len(xs))
	for i, x := range xs {
		plus[i] = x + v
	}
	add(Op{Name: "add_each", N: v}, fmt.Sprintf("Add %d to every number.", v), plus)
	c := cands[r.intn(len(cands))]
	return c.op, c.text, c.next
}

func filter(xs []int, keep func(int) bool) []int {
	var out []int
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// formatList writes a list as "[3, 8, 1]".
func formatList(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
