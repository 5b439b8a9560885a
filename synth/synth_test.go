package synth

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
)

// The checker below is deliberately written apart from the generator: it
// decodes the program JSON into its own types and re-derives each answer
// by interpreting the operations from their documented meaning, or, for
// puzzles, by brute force over every possible world. It shares no code
// with the generator beyond the JSON field names.

type tOp struct {
	Op string `json:"op"`
	N  int    `json:"n"`
	S  string `json:"s"`
	T  string `json:"t"`
}

type tConstraint struct {
	C string `json:"c"`
	A string `json:"a"`
	B string `json:"b"`
	N int    `json:"n"`
}

type tStatement struct {
	Speaker string `json:"speaker"`
	Target  string `json:"target"`
	Claim   bool   `json:"claim"`
}

type tProgram struct {
	Kind          string        `json:"kind"`
	Start         int           `json:"start"`
	List          []int         `json:"list"`
	Word          string        `json:"word"`
	Ops           []tOp         `json:"ops"`
	People        []string      `json:"people"`
	Constraints   []tConstraint `json:"constraints"`
	Position      int           `json:"position"`
	FirstTruthful *bool         `json:"first_truthful"`
	Statements    []tStatement  `json:"statements"`
	Ask           string        `json:"ask"`
}

func decode(t *testing.T, it benchdata.Item) tProgram {
	t.Helper()
	var p tProgram
	if err := json.Unmarshal([]byte(it.Meta["program"]), &p); err != nil {
		t.Fatalf("%s: bad program JSON: %v", it.ID, err)
	}
	return p
}

// solveArith interprets arithmetic ops, refusing inexact division.
func solveArith(p tProgram) (string, int, error) {
	x := p.Start
	for _, op := range p.Ops {
		switch op.Op {
		case "add":
			x += op.N
		case "sub":
			x -= op.N
		case "mul":
			x *= op.N
		case "div":
			if op.N == 0 || x%op.N != 0 {
				return "", 0, fmt.Errorf("inexact division %d/%d", x, op.N)
			}
			x /= op.N
		case "lose_frac":
			if op.N == 0 || x%op.N != 0 {
				return "", 0, fmt.Errorf("inexact fraction 1/%d of %d", op.N, x)
			}
			x -= x / op.N
		default:
			return "", 0, fmt.Errorf("unknown op %q", op.Op)
		}
		if x < 1 {
			return "", 0, fmt.Errorf("amount fell to %d", x)
		}
	}
	return strconv.Itoa(x), len(p.Ops), nil
}

func solveList(p tProgram) (string, int, error) {
	xs := append([]int(nil), p.List...)
	for _, op := range p.Ops {
		switch op.Op {
		case "sort":
			sort.Ints(xs)
		case "sort_desc":
			sort.Sort(sort.Reverse(sort.IntSlice(xs)))
		case "reverse":
			for i, j := 0, len(xs)-1; i < j; i, j = i+1, j-1 {
				xs[i], xs[j] = xs[j], xs[i]
			}
		case "take":
			if op.N > len(xs) {
				return "", 0, fmt.Errorf("take %d of %d", op.N, len(xs))
			}
			xs = xs[:op.N]
		case "drop":
			if op.N > len(xs) {
				return "", 0, fmt.Errorf("drop %d of %d", op.N, len(xs))
			}
			xs = xs[op.N:]
		case "append":
			xs = append(xs, op.N)
		case "keep_even", "keep_odd":
			var kept []int
			for _, x := range xs {
				if (x%2 == 0) == (op.Op == "keep_even") {
					kept = append(kept, x)
				}
			}
			xs = kept
		case "add_each":
			for i := range xs {
				xs[i] += op.N
			}
		default:
			return "", 0, fmt.Errorf("unknown op %q", op.Op)
		}
		if len(xs) == 0 {
			return "", 0, fmt.Errorf("list became empty")
		}
	}
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return strconv.Itoa(sum), len(p.Ops), nil
}

func solveString(p tProgram) (string, int, error) {
	s := p.Word
	for i, op := range p.Ops {
		switch op.Op {
		case "reverse":
			r := []rune(s)
			for a, b := 0, len(r)-1; a < b; a, b = a+1, b-1 {
				r[a], r[b] = r[b], r[a]
			}
			s = string(r)
		case "upper":
			s = strings.ToUpper(s)
		case "lower":
			s = strings.ToLower(s)
		case "take_first":
			s = s[:op.N]
		case "take_last":
			s = s[len(s)-op.N:]
		case "drop_first":
			s = s[op.N:]
		case "append":
			s += op.S
		case "remove":
			s = strings.ReplaceAll(s, op.S, "")
		case "replace":
			s = strings.ReplaceAll(s, op.S, op.T)
		case "count":
			if i != len(p.Ops)-1 {
				return "", 0, fmt.Errorf("count is not the last op")
			}
			return strconv.Itoa(strings.Count(s, op.S)), len(p.Ops), nil
		default:
			return "", 0, fmt.Errorf("unknown op %q", op.Op)
		}
		if s == "" {
			return "", 0, fmt.Errorf("string became empty")
		}
	}
	return s, len(p.Ops), nil
}

// orderAnswers returns the set of people that stand at the asked position
// in some line-up satisfying all constraints except the one at skip (-1
// for none), by trying every permutation.
func orderAnswers(p tProgram, skip int) map[string]bool {
	n := len(p.People)
	out := map[string]bool{}
	perm := make([]int, n) // perm[i]: index into People of the person at position i+1
	for i := range perm {
		perm[i] = i
	}
	var visit func(int)
	visit = func(i int) {
		if i == n {
			where := map[string]int{}
			for pos, who := range perm {
				where[p.People[who]] = pos + 1
			}
			for ci, c := range p.Constraints {
				if ci == skip {
					continue
				}
				a, b := where[c.A], where[c.B]
				dist := a - b
				if dist < 0 {
					dist = -dist
				}
				var ok bool
				switch c.C {
				case "at":
					ok = a == c.N
				case "not_at":
					ok = a != c.N
				case "end":
					ok = a == 1 || a == n
				case "left_of":
					ok = a < b
				case "right_of":
					ok = a > b
				case "next_to":
					ok = a+1 == b
				case "adjacent":
					ok = dist == 1
				case "not_adjacent":
					ok = dist != 1
				case "gap":
					ok = dist == c.N+1
				}
				if !ok {
					return
				}
			}
			out[p.People[perm[p.Position-1]]] = true
			return
		}
		for j := i; j < n; j++ {
			perm[i], perm[j] = perm[j], perm[i]
			visit(i + 1)
			perm[i], perm[j] = perm[j], perm[i]
		}
	}
	visit(0)
	return out
}

func solveOrder(p tProgram) (string, int, error) {
	if p.Position < 1 || p.Position > len(p.People) {
		return "", 0, fmt.Errorf("position %d out of range", p.Position)
	}
	ans := orderAnswers(p, -1)
	if len(ans) != 1 {
		return "", 0, fmt.Errorf("%d possible answers", len(ans))
	}
	for i := range p.Constraints {
		if len(orderAnswers(p, i)) == 1 {
			return "", 0, fmt.Errorf("constraint %d (%+v) is redundant", i, p.Constraints[i])
		}
	}
	for who := range ans {
		return who, len(p.Constraints), nil
	}
	return "", 0, nil
}

// solveTruth tries every truth/lie assignment of everyone mentioned and
// keeps the consistent ones; the asked person's status must be the same
// in all of them.
func solveTruth(p tProgram) (string, int, error) {
	if p.FirstTruthful == nil || len(p.Statements) == 0 {
		return "", 0, fmt.Errorf("incomplete truth program")
	}
	if len(p.Statements) > 14 {
		return solveTruthParity(p)
	}
	idx := map[string]int{}
	var people []string
	for _, s := range p.Statements {
		for _, who := range []string{s.Target, s.Speaker} {
			if _, ok := idx[who]; !ok {
				idx[who] = len(people)
				people = append(people, who)
			}
		}
	}
	first := p.Statements[0].Target
	answers := map[bool]bool{}
	for mask := 0; mask < 1<<len(people); mask++ {
		truthful := func(who string) bool { return mask&(1<<idx[who]) != 0 }
		if truthful(first) != *p.FirstTruthful {
			continue
		}
		consistent := true
		for _, s := range p.Statements {
			claimTrue := truthful(s.Target) == s.Claim
			if truthful(s.Speaker) != claimTrue {
				consistent = false
				break
			}
		}
		if consistent {
			answers[truthful(p.Ask)] = true
		}
	}
	if len(answers) != 1 {
		return "", 0, fmt.Errorf("%d possible answers", len(answers))
	}
	if answers[true] {
		return "yes", len(p.Statements), nil
	}
	return "no", len(p.Statements), nil
}

// solveTruthParity handles chains too long to brute-force: along a chain
// every "X says Y lies" flips the status and every "tells the truth"
// keeps it, so the last person's status is the first's flipped once per
// "lies" claim. The chain shape itself is checked first.
func solveTruthParity(p tProgram) (string, int, error) {
	truthful := *p.FirstTruthful
	for i, s := range p.Statements {
		if i > 0 && s.Target != p.Statements[i-1].Speaker {
			return "", 0, fmt.Errorf("statement %d is not part of a chain", i)
		}
		if !s.Claim {
			truthful = !truthful
		}
	}
	if p.Ask != p.Statements[len(p.Statements)-1].Speaker {
		return "", 0, fmt.Errorf("asked person is not the end of the chain")
	}
	if truthful {
		return "yes", len(p.Statements), nil
	}
	return "no", len(p.Statements), nil
}

func solve(p tProgram) (string, int, error) {
	switch p.Kind {
	case "arith":
		return solveArith(p)
	case "list":
		return solveList(p)
	case "string":
		return solveString(p)
	case "order":
		return solveOrder(p)
	case "truth":
		return solveTruth(p)
	}
	return "", 0, fmt.Errorf("unknown kind %q", p.Kind)
}

var idRe = regexp.MustCompile(`^synth-(arith|list|string|order|truth)-k(\d+)-(\d{4})$`)

// checkItem re-derives an item's gold and checks its bookkeeping and
// that its text agrees with its program.
func checkItem(t *testing.T, it benchdata.Item) {
	t.Helper()
	p := decode(t, it)
	gold, steps, err := solve(p)
	if err != nil {
		t.Errorf("%s: %v\n%s", it.ID, err, it.Question)
		return
	}
	if gold != it.Gold {
		t.Errorf("%s: gold %q, checker says %q\n%s", it.ID, it.Gold, gold, it.Question)
	}
	if steps != it.Steps {
		t.Errorf("%s: Steps %d, program has %d", it.ID, it.Steps, steps)
	}
	m := idRe.FindStringSubmatch(it.ID)
	if m == nil || m[1] != p.Kind || m[2] != strconv.Itoa(it.Steps) {
		t.Errorf("%s: id does not match kind %s / steps %d", it.ID, p.Kind, it.Steps)
	}
	if v := answer.Score(it.Kind, it.Gold, it.Gold); !v.Correct {
		t.Errorf("%s: gold %q does not score against itself as %s", it.ID, it.Gold, it.Kind)
	}
	if pred, ok := answer.Final(it.Kind, "Let me work it out.\nThe answer is "+it.Gold+"."); !ok || !answer.Score(it.Kind, pred, it.Gold).Correct {
		t.Errorf("%s: a correct model answer %q extracts as %q and is not scored correct", it.ID, it.Gold, pred)
	}
	q := it.Question
	switch p.Kind {
	case "arith":
		if it.Kind != answer.Number || !regexp.MustCompile(`^[A-Z][a-z]+ has `+strconv.Itoa(p.Start)+` [a-z]+\.`).MatchString(q) {
			t.Errorf("%s: bad arith opening or kind: %q", it.ID, q)
		}
		// One sentence for the start, one per step, then the question.
		if got := strings.Count(q, "."); got != 1+steps || !strings.HasSuffix(q, "now?") {
			t.Errorf("%s: %d sentences for %d steps: %q", it.ID, got, steps, q)
		}
	case "list", "string":
		for i := 1; i <= steps; i++ {
			if !strings.Contains(q, "\n"+strconv.Itoa(i)+". ") {
				t.Errorf("%s: step %d missing from %q", it.ID, i, q)
			}
		}
		if strings.Contains(q, "\n"+strconv.Itoa(steps+1)+". ") {
			t.Errorf("%s: more than %d steps in %q", it.ID, steps, q)
		}
		if p.Kind == "list" && !strings.Contains(q, "["+strings.Trim(strings.Join(strings.Fields(fmt.Sprint(p.List)), ", "), "[]")+"]") {
			t.Errorf("%s: start list %v not in %q", it.ID, p.List, q)
		}
		if p.Kind == "string" && !strings.Contains(q, strconv.Quote(p.Word)) {
			t.Errorf("%s: start word %q not in %q", it.ID, p.Word, q)
		}
	case "order":
		if got := strings.Count(q, "."); got != 1+steps {
			t.Errorf("%s: %d sentences for %d constraints: %q", it.ID, got, steps, q)
		}
		if !strings.HasSuffix(q, "Who is in position "+strconv.Itoa(p.Position)+"?") {
			t.Errorf("%s: wrong question: %q", it.ID, q)
		}
		for _, c := range p.Constraints {
			if !strings.Contains(q, c.A) || !strings.Contains(q, c.B) {
				t.Errorf("%s: constraint %+v names people missing from the text", it.ID, c)
			}
		}
	case "truth":
		if got := strings.Count(q, "."); got != 2+steps {
			t.Errorf("%s: %d sentences for %d statements: %q", it.ID, got, steps, q)
		}
		for _, s := range p.Statements {
			verb := "lies"
			if s.Claim {
				verb = "tells the truth"
			}
			if !strings.Contains(q, s.Speaker+" says "+s.Target+" "+verb+".") {
				t.Errorf("%s: statement %+v not in %q", it.ID, s, q)
			}
		}
	}
}

// TestGoldsReDerived checks thousands of generated items with the
// independent checker.
func TestGoldsReDerived(t *testing.T) {
	steps := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	items := Generate(42, 150, steps, []Kind{Arith, List, String, Truth})
	if len(items) != 4*10*150 {
		t.Fatalf("got %d items", len(items))
	}
	items = append(items, Generate(7, 25, []int{1, 2, 3, 4, 5, 6, 7, 8}, []Kind{Order})...)
	items = append(items, Generate(3, 3, []int{40}, []Kind{Arith, List, String, Truth})...)
	ids := map[string]bool{}
	for _, it := range items {
		if ids[it.ID] {
			t.Fatalf("duplicate id %s", it.ID)
		}
		ids[it.ID] = true
		checkItem(t, it)
	}
	t.Logf("checked %d items", len(items))
}

func TestDeterministic(t *testing.T) {
	kinds := []Kind{Arith, List, String, Order, Truth}
	a := Generate(99, 5, []int{1, 3, 5}, kinds)
	b := Generate(99, 5, []int{1, 3, 5}, kinds)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different items")
	}
	c := Generate(100, 5, []int{1, 3, 5}, kinds)
	same := 0
	for i := range a {
		if a[i].Question == c[i].Question {
			same++
		}
	}
	if same > len(a)/4 {
		t.Errorf("seed 100 repeats %d of %d questions of seed 99", same, len(a))
	}
	// An item depends only on (seed, kind, k, index): a bigger request
	// contains the smaller one unchanged.
	small := Generate(99, 3, []int{3}, []Kind{List})
	big := Generate(99, 6, []int{1, 3}, []Kind{Arith, List})
	byID := map[string]benchdata.Item{}
	for _, it := range big {
		byID[it.ID] = it
	}
	for _, it := range small {
		if !reflect.DeepEqual(byID[it.ID], it) {
			t.Errorf("%s changed when more items were requested", it.ID)
		}
	}
}

// TestGolden pins one item per kind so that an accidental change of the
// generator (which would silently change published benchmark files) is
// noticed.
func TestGolden(t *testing.T) {
	items := Generate(1, 1, []int{3}, []Kind{Arith, List, String, Order, Truth})
	for _, it := range items {
		t.Logf("%s | %q | %q", it.ID, it.Question, it.Gold)
	}
	want := map[string][2]string{}
	for _, g := range goldenItems {
		want[g[0]] = [2]string{g[1], g[2]}
	}
	for _, it := range items {
		w, ok := want[it.ID]
		if !ok {
			t.Errorf("no golden entry for %s", it.ID)
			continue
		}
		if it.Question != w[0] || it.Gold != w[1] {
			t.Errorf("%s changed:\n got %q / %q\nwant %q / %q", it.ID, it.Question, it.Gold, w[0], w[1])
		}
	}
}

func TestValidateAndParse(t *testing.T) {
	if err := Validate([]int{1, 8}, Kinds); err != nil {
		t.Errorf("valid request rejected: %v", err)
	}
	bad := []struct {
		steps []int
		kinds []Kind
		want  string
	}{
		{nil, Kinds, "no step counts"},
		{[]int{1}, nil, "no kinds"},
		{[]int{0}, []Kind{Arith}, "arith problems support 1 to 40 steps, not 0"},
		{[]int{9}, []Kind{Order}, "order problems support 1 to 8 steps, not 9"},
		{[]int{1}, []Kind{"poetry"}, `unknown synthetic kind "poetry"`},
	}
	for _, b := range bad {
		if err := Validate(b.steps, b.kinds); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate(%v, %v) = %v, want %q", b.steps, b.kinds, err, b.want)
		}
	}
	if k, err := ParseKind(" Order "); err != nil || k != Order {
		t.Errorf("ParseKind = %q, %v", k, err)
	}
	if got := Generate(1, 2, []int{0, 41}, []Kind{Order, "poetry", Arith}); len(got) != 0 {
		t.Errorf("invalid requests generated %d items", len(got))
	}
	if got := Generate(1, 0, []int{1}, Kinds); len(got) != 0 {
		t.Errorf("n=0 generated %d items", len(got))
	}
}
