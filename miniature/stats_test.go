package miniature

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestBootstrap: the interval contains the observed difference, is narrow
// for many items and excludes 0 for a clear effect, and includes 0 when the
// arms agree on every item.
func TestBootstrap(t *testing.T) {
	n := 400
	a, b := make([]bool, n), make([]bool, n)
	for i := range a {
		a[i] = i%10 < 6 // 60%
		b[i] = i%10 < 4 // 40%
	}
	d, lo, hi := Bootstrap(a, b, 2000, 1)
	if math.Abs(d-0.2) > 1e-12 || !(lo < d && d < hi) || lo < 0.1 || hi > 0.3 {
		t.Errorf("difference %.3f [%.3f, %.3f], want 0.2 inside a narrow interval above 0", d, lo, hi)
	}
	_, lo2, hi2 := Bootstrap(a, b, 2000, 1)
	if lo2 != lo || hi2 != hi {
		t.Errorf("same seed, other interval: [%.3f, %.3f] vs [%.3f, %.3f]", lo, hi, lo2, hi2)
	}
	d, lo, hi = Bootstrap(a, a, 2000, 1)
	if d != 0 || lo != 0 || hi != 0 {
		t.Errorf("identical arms: %.3f [%.3f, %.3f]", d, lo, hi)
	}
}

// TestPromptBlind: a sequence seen in training is cheap, an unseen one
// costs about log(vocab) per token, and the probabilities of a context sum
// to 1.
func TestPromptBlind(t *testing.T) {
	train := [][]int{{1, 2, 3, 4}, {1, 2, 3, 5}, {1, 2, 3, 4}}
	seen := PromptBlind(train, [][]int{{1, 2, 3, 4}}, 3, 10)
	unseen := PromptBlind(train, [][]int{{7, 8, 9, 6}}, 3, 10)
	if !(seen.NatsPerToken < 1.2) || !(unseen.NatsPerToken > 2) || seen.Tokens != 4 {
		t.Errorf("seen %.3f, unseen %.3f nats per token", seen.NatsPerToken, unseen.NatsPerToken)
	}
	m := newNgram(train, 3, 10)
	sum := 0.0
	for tok := 0; tok < 10; tok++ {
		sum += m.prob([]int{2, 3}, tok)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities after [2 3] sum to %g", sum)
	}
}

// TestFollows reads plan and response steps the way the report does.
func TestFollows(t *testing.T) {
	code := "def solve():\n    person = \"Ann\"\n    if boss(person) == \"Bob\":\n        person = mentor(person)\n    else:\n        person = friend(person)\n    return person"
	cases := []struct {
		plan, resp   string
		want, parsed bool
	}{
		{code, "Ann's boss is Bob, so the condition holds.\nAnn's mentor is Cid.\nThe answer is Cid.", true, true},
		{code, "Ann's boss is Eve, not Bob, so the condition fails.\nAnn's friend is Dee.\nThe answer is Dee.", true, true},
		{code, "Ann's boss is Eve, not Bob, so the condition fails.\nAnn's rival is Dee.\nThe answer is Dee.", false, true},
		{"1. Start from Ann.\n2. Find Ann's boss.\n3. Find that person's mentor.\n4. Give that person's name.",
			"Ann's boss is Bob.\nBob's mentor is Cid.\nThe answer is Cid.", true, true},
		{"1. Start from Ann.\n2. Find Ann's boss.\n3. Find that person's mentor.", "Ann's mentor is Bob.\nBob's boss is Cid.", false, true},
		{"def solve():\n    person = \"blank\"", "Ann's boss is Bob.", false, false},
	}
	for _, c := range cases {
		if got, parsed := follows(c.plan, c.resp); got != c.want || parsed != c.parsed {
			t.Errorf("follows(%q, %q) = %v, %v; want %v, %v", c.plan, c.resp, got, parsed, c.want, c.parsed)
		}
	}
}

// TestCompare builds the summary from made-up arms: the pre-registered
// pairs put code plan first, the counts and McNemar come from the items,
// a clear effect separates and no effect does not, the curve ends at the
// arm's main result, and the Markdown has a row per pair.
func TestCompare(t *testing.T) {
	var rows []Row
	arm := func(name string, right func(i int) bool) *Arm {
		a := &Arm{Name: name, Results: map[string]Result{}}
		for i := 0; i < 200; i++ {
			a.Results[fmt.Sprint(i)] = Result{ItemID: fmt.Sprint(i), Correct: right(i)}
		}
		return a
	}
	for i := 0; i < 200; i++ {
		rows = append(rows, Row{ID: fmt.Sprint(i), K: 1 + i%2, Plan: "p", Response: "r"})
	}
	direct := arm("direct", func(i int) bool { return i%10 < 3 })   // 30%
	code := arm("codeplan", func(i int) bool { return i%10 < 7 })   // 70%, right wherever direct is
	control := arm("control", func(i int) bool { return i%10 < 3 }) // = direct
	curve := arm("codeplan@50", func(i int) bool { return i%10 < 5 })
	s, err := Compare(rows, []*Arm{direct, code, control, curve}, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pairs) != 3*3 {
		t.Fatalf("%d pairs, want 3 pairs x (all, k=1, k=2)", len(s.Pairs))
	}
	p := s.Pairs[0]
	if p.A != "codeplan" || p.B != "direct" || p.K != 0 || !p.Primary || p.OnlyA != 80 || p.OnlyB != 0 ||
		math.Abs(p.Diff-0.4) > 1e-12 || !p.Separate || p.P > 1e-20 {
		t.Errorf("codeplan vs direct: %+v", p)
	}
	for _, q := range s.Pairs {
		if q.A == "direct" && q.B == "control" && (q.Separate || q.Primary || q.P != 1) {
			t.Errorf("direct vs control (identical): %+v", q)
		}
	}
	if c := s.Curves["codeplan"]; len(c) != 2 || c[0].Pct != 50 || c[0].Cell.Acc != 0.5 || c[1].Pct != 100 || c[1].Cell.Acc != 0.7 {
		t.Errorf("curve %+v", c)
	}
	var md strings.Builder
	s.Markdown(&md, "t")
	for _, want := range []string{"| all (n=200) | 30.0% [24, 37] | 70.0% [63, 76] | 30.0% [24, 37] |",
		"| *!codeplan vs direct | all | +40.0 |", "| codeplan | 50.0% | 70.0% |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if _, err := Compare(rows[:1], []*Arm{{Name: "direct", Results: map[string]Result{}}}, 100); err == nil {
		t.Error("an arm without a result for an item: no error")
	}
}
