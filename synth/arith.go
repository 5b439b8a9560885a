package synth

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// arithMax bounds every intermediate amount, keeping problems readable.
const arithMax = 999

var arithObjects = []string{"apples", "marbles", "stickers", "coins", "pencils", "stamps", "shells", "beads", "cards", "cookies"}

var fractionWords = map[int]string{2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}

var timesWords = map[int]string{2: "doubles", 3: "triples", 4: "quadruples"}

// genArith builds a k-step word problem. Each step picks an operation
// type uniformly among those that keep the amount an integer in
// [2, arithMax], then a uniform argument.
func genArith(r *rng, k int) problem {
	name := names[r.intn(len(names))]
	he := pronoun(name)
	obj := arithObjects[r.intn(len(arithObjects))]
	x := r.between(6, 60)
	prog := Program{Start: x}
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d %s.", name, x, obj)
	for i := 0; i < k; i++ {
		var kinds []string
		if x+2 <= arithMax {
			kinds = append(kinds, "add")
		}
		if x >= 3 {
			kinds = append(kinds, "sub")
		}
		if x*2 <= arithMax {
			kinds = append(kinds, "mul")
		}
		var divs, fracs []int
		for d := 2; d <= 5; d++ {
			if x%d == 0 && x/d >= 2 {
				divs = append(divs, d)
			}
			if x%d == 0 && x-x/d >= 2 {
				fracs = append(fracs, d)
			}
		}
		if len(divs) > 0 {
			kinds = append(kinds, "div")
		}
		if len(fracs) > 0 {
			kinds = append(kinds, "lose_frac")
		}
		op := Op{Name: kinds[r.intn(len(kinds))]}
		var sentence string
		switch op.Name {
		case "add":
			op.N = r.between(2, min(30, arithMax-x))
			x += op.N
			sentence = []string{"%s buys %d more %s.", "%s finds %d more %s.", "%s gets %d more %s from a friend."}[r.intn(3)]
			sentence = fmt.Sprintf(sentence, he, op.N, obj)
		case "sub":
			op.N = r.between(1, min(30, x-2))
			x -= op.N
			sentence = []string{"%s gives %d %s to a neighbour.", "%s loses %d %s.", "%s uses %d %s."}[r.intn(3)]
			sentence = fmt.Sprintf(sentence, he, op.N, obj)
		case "mul":
			var ms []int
			for m := 2; m <= 4; m++ {
				if x*m <= arithMax {
					ms = append(ms, m)
				}
			}
			op.N = ms[r.intn(len(ms))]
			x *= op.N
			sentence = fmt.Sprintf("%s %s the number of %s.", he, timesWords[op.N], obj)
		case "div":
			op.N = divs[r.intn(len(divs))]
			x /= op.N
			sentence = fmt.Sprintf("%s splits the %s equally into %d boxes and keeps only one box.", he, obj, op.N)
		case "lose_frac":
			op.N = fracs[r.intn(len(fracs))]
			x -= x / op.N
			sentence = fmt.Sprintf("%s gives away %s of the %s.", he, fractionWords[op.N], obj)
		}
		prog.Ops = append(prog.Ops, op)
		b.WriteString(" " + sentenceCase(connector(i, k)+sentence))
	}
	fmt.Fprintf(&b, " How many %s does %s have now?", obj, name)
	return problem{question: b.String(), gold: strconv.Itoa(x), kind: answer.Number, program: prog}
}

// sentenceCase upper-cases the first letter of s.
func sentenceCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
