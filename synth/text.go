package synth

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// stringMaxLen bounds the working string so that problems stay readable.
const stringMaxLen = 16

var startWords = []string{
	"planet", "garden", "window", "basket", "lantern", "meadow", "harbor", "pencil",
	"rocket", "silver", "tunnel", "violin", "orange", "castle", "marble", "puzzle",
	"summer", "winter", "dragon", "forest", "kitten", "ladder", "mirror", "pepper",
	"quartz", "rabbit", "saddle", "teapot", "button", "candle",
}

var suffixWords = []string{"cat", "sun", "box", "red", "owl", "map", "ink", "jam", "zip", "fog"}

// genString builds k string operations on a common word. Each step picks
// uniformly among the operations that change the string and keep at least
// two characters. With probability 1/4 (and k >= 2) the last step counts
// a character instead, making the answer a number. Operations are
// case-sensitive, and so is the grading of the final string
// (answer.ExactCase), as the question tells the model.
func genString(r *rng, k int) problem {
	s := startWords[r.intn(len(startWords))]
	prog := Program{Word: s}
	var b strings.Builder
	fmt.Fprintf(&b, "Start with the string %q. Apply these operations in order (upper- and lower-case letters are different characters):", s)
	countLast := k >= 2 && r.intn(4) == 0
	for i := 0; i < k; i++ {
		if countLast && i == k-1 {
			c := string(s[r.intn(len(s))])
			op := Op{Name: "count", S: c}
			prog.Ops = append(prog.Ops, op)
			fmt.Fprintf(&b, "\n%d. Count how many times %q appears in the string.", i+1, c)
			b.WriteString("\nWhat number does the last step give?")
			return problem{question: b.String(), gold: strconv.Itoa(strings.Count(s, c)), kind: answer.Number, program: prog}
		}
		op, text, next := pickStringOp(r, s)
		s = next
		prog.Ops = append(prog.Ops, op)
		fmt.Fprintf(&b, "\n%d. %s", i+1, text)
	}
	b.WriteString("\nWhat is the final string?")
	return problem{question: b.String(), gold: s, kind: answer.ExactCase, program: prog}
}

// pickStringOp chooses one applicable operation and returns it, its
// instruction text and the resulting string.
func pickStringOp(r *rng, s string) (Op, string, string) {
	type cand struct {
		op   Op
		text string
		next string
	}
	var cands []cand
	add := func(op Op, text, next string) {
		if len(next) >= 2 && next != s {
			cands = append(cands, cand{op, text, next})
		}
	}
	add(Op{Name: "reverse"}, "Reverse the string.", reverseString(s))
	add(Op{Name: "upper"}, "Convert the string to uppercase.", strings.ToUpper(s))
	add(Op{Name: "lower"}, "Convert the string to lowercase.", strings.ToLower(s))
	if len(s) >= 3 {
		n := r.between(2, len(s)-1)
		add(Op{Name: "take_first", N: n}, fmt.Sprintf("Keep only the first %d characters.", n), s[:n])
		m := r.between(2, len(s)-1)
		add(Op{Name: "take_last", N: m}, fmt.Sprintf("Keep only the last %d characters.", m), s[len(s)-m:])
		d := r.between(1, len(s)-2)
		add(Op{Name: "drop_first", N: d}, fmt.Sprintf("Remove the first %d characters.", d), s[d:])
	}
	w := suffixWords[r.intn(len(suffixWords))]
	if len(s)+len(w) <= stringMaxLen {
		add(Op{Name: "append", S: w}, fmt.Sprintf("Append %q to the end.", w), s+w)
	}
	c := string(s[r.intn(len(s))])
	add(Op{Name: "remove", S: c}, fmt.Sprintf("Remove every %q.", c), strings.ReplaceAll(s, c, ""))
	from := string(s[r.intn(len(s))])
	to := string(rune('a' + r.intn(26)))
	if strings.ToUpper(from) == from {
		to = strings.ToUpper(to)
	}
	add(Op{Name: "replace", S: from, T: to}, fmt.Sprintf("Replace every %q with %q.", from, to), strings.ReplaceAll(s, from, to))
	if len(cands) == 0 {
		// Unreachable for the words used (reverse or a case change always
		// applies), but a fixed fallback keeps generation total.
		return Op{Name: "append", S: "x"}, `Append "x" to the end.`, s + "x"
	}
	ch := cands[r.intn(len(cands))]
	return ch.op, ch.text, ch.next
}

func reverseString(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
