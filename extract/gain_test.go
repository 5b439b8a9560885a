package extract

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/loglik"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

func tinyGain(t *testing.T) LocalGain {
	t.Helper()
	m := testmodel.Load(t)
	ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 2048, Sequences: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Close() })
	txt, err := loglik.NewText(m, ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txt.Close)
	return LocalGain{Text: txt, Chat: planner.ChatML{}}
}

const gainPrompt = "How many digits are needed to number the pages of a 30-page book?"
const gainResponse = "Pages 1 to 9 use one digit each: 9 digits. Pages 10 to 30 use two digits each: 21 pages, 42 digits. Total: 9 + 42 = 51 digits."

// On the tiny model, a plan that repeats the response verbatim must help
// predict the response more than an unrelated plan does, for every one of
// several responses: even random weights attend to repeated tokens. (Both
// gains are positive: part of any gain is the layout, see LocalGain.)
func TestGainVerbatimBeatsUnrelated(t *testing.T) {
	g := tinyGain(t)
	unrelatedPlan := "def bake():\n    mix(flour, water)\n    knead(dough)\n    return oven(dough, minutes=40)"
	cases := []struct{ prompt, response string }{
		{"How many digits are needed to number the pages of a 30-page book?",
			"Pages 1 to 9 use one digit each: 9 digits. Pages 10 to 30 use two digits each: 21 pages, 42 digits. Total: 9 + 42 = 51 digits."},
		{"Is 91 a prime number?", "No. 91 = 7 x 13, so it has divisors other than 1 and itself and is not prime."},
		{"Sort the words pear, apple, fig.", "In alphabetical order: apple comes first, then fig, then pear. The sorted list is apple, fig, pear."},
	}
	for _, c := range cases {
		verbatim, err := g.Gain(c.prompt, "print(\""+c.response+"\")", c.response)
		if err != nil {
			t.Fatal(err)
		}
		unrelated, err := g.Gain(c.prompt, unrelatedPlan, c.response)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verbatim %+v\nunrelated %+v", verbatim, unrelated)
		if verbatim.Tokens == 0 || verbatim.Tokens != unrelated.Tokens {
			t.Fatalf("scored %d and %d response tokens", verbatim.Tokens, unrelated.Tokens)
		}
		if verbatim.WithoutPlan != unrelated.WithoutPlan {
			t.Errorf("the no-plan score depends on the plan: %v vs %v", verbatim.WithoutPlan, unrelated.WithoutPlan)
		}
		if verbatim.Nats-unrelated.Nats < 0.1 {
			t.Errorf("%q: verbatim plan gains %.3f nats/token, unrelated %.3f: want a clear margin", c.prompt, verbatim.Nats, unrelated.Nats)
		}
		if d := verbatim.Nats - (verbatim.WithPlan - verbatim.WithoutPlan); d != 0 {
			t.Errorf("gain_nats is not the difference: off by %v", d)
		}
	}
}

// planGen answers every extraction prompt with a fixed plan.
type planGen struct{ plans map[string]string }

func (p planGen) Generate(_ context.Context, id string, _ []planner.Message, _ int) (Generation, error) {
	return Generation{Text: p.plans[id], Tokens: 10, PromptTokens: 50}, nil
}

// With Gain set, every row with a plan carries the scores (rejected rows
// too); MinGain rejects accepted rows below it as low_gain, and the summary
// holds the distribution.
func TestRunScoresGain(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for _, id := range []string{"a", "b", "c", "prose"} {
		fmt.Fprintf(&b, `{"id":%q,"prompt":"Is 91 a prime number?","response":"No. 91 = 7 x 13, so it has divisors other than 1 and itself."}`+"\n", id)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	gen := planGen{plans: map[string]string{
		"a":     "```python\ndef is_prime(n):\n    d = smallest_divisor(n)\n    return d == n\n```",
		"b":     "```python\ndef bake():\n    mix(flour, water)\n    knead(dough)\n    return oven(dough)\n```",
		"c":     "```python\ndef check(n):\n    for d in range(2, n):\n        if n % d == 0:\n            return False\n    return True\n```",
		"prose": "It factors the number.",
	}}
	g := tinyGain(t)
	run := func(name string, minGain *float64) Summary {
		cfg := Config{Input: in, Output: filepath.Join(dir, name+".jsonl"), Rejects: filepath.Join(dir, name+".rej.jsonl"),
			Workers: 2, Logger: zerolog.Nop(), Gain: g, MinGain: minGain}
		sum, err := Run(context.Background(), context.Background(), gen, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	sum := run("all", nil)
	if sum.Written != 3 || sum.GainAccepted == nil || sum.GainAccepted.Rows != 3 || sum.GainAll.Rows != 3 {
		t.Fatalf("summary %+v, gains %+v %+v", sum, sum.GainAccepted, sum.GainAll)
	}
	if a := sum.GainAccepted; !(a.Q1 <= a.Median && a.Median <= a.Q3) {
		t.Errorf("quartiles out of order: %+v", a)
	}
	gains := map[string]float64{}
	for _, row := range lines(t, filepath.Join(dir, "all.jsonl")) {
		for _, k := range []string{"loglik_with_plan", "loglik_without_plan", "gain_nats", "gain_tokens"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v lacks %s", row["id"], k)
			}
		}
		gains[row["id"].(string)] = row["gain_nats"].(float64)
	}
	for _, row := range lines(t, filepath.Join(dir, "all.rej.jsonl")) {
		if _, ok := row["gain_nats"]; ok {
			t.Errorf("a row without a plan got a gain: %v", row)
		}
	}
	// A minimum between the gains keeps the rows above it only.
	lo, hi := gains["a"], gains["a"]
	for _, v := range gains {
		lo, hi = min(lo, v), max(hi, v)
	}
	mid := (lo + hi) / 2
	sum = run("min", &mid)
	want := 0
	for _, v := range gains {
		if v >= mid {
			want++
		}
	}
	if sum.Written != int64(want) || sum.Reasons[string(ReasonLowGain)] != int64(3-want) || want == 0 || want == 3 {
		t.Errorf("--min-gain %.4f (gains %v): written %d, low_gain %d", mid, gains, sum.Written, sum.Reasons[string(ReasonLowGain)])
	}
	for _, row := range lines(t, filepath.Join(dir, "min.rej.jsonl")) {
		if row["reason"] == string(ReasonLowGain) && row["gain_nats"].(float64) >= mid {
			t.Errorf("rejected as low_gain above the minimum: %v", row)
		}
	}
	if sum.GainAll.Rows != 3 || sum.GainAccepted.Rows != want {
		t.Errorf("gain stats %+v / %+v", sum.GainAccepted, sum.GainAll)
	}
}

func TestGainStats(t *testing.T) {
	s := NewGainStats([]float64{4, 1, 3, 2, 5})
	if s.Rows != 5 || s.Mean != 3 || s.Q1 != 2 || s.Median != 3 || s.Q3 != 4 {
		t.Errorf("%+v", s)
	}
	if z := NewGainStats(nil); z.Rows != 0 {
		t.Errorf("%+v", z)
	}
}
