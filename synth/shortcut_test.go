package synth

import (
	"encoding/json"
	"testing"

	"github.com/codeplan-dev/codeplan/benchdata"
)

// nameCountGuess scores the guess "the answer is the name the facts mention
// most often, other than the start person" (with fewest: least often), ties
// sharing the credit, and what a name picked at random among those would
// score.
func nameCountGuess(t *testing.T, items []benchdata.Item, fewest bool) (rate, chance float64) {
	t.Helper()
	for _, it := range items {
		var p chainProgram
		if err := json.Unmarshal([]byte(it.Meta["program"]), &p); err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, f := range p.Facts {
			count[f.Person]++
			count[f.Value]++
		}
		delete(count, p.Person)
		best, tied := 0, []string(nil)
		for name, c := range count {
			if fewest {
				c = -c
			}
			switch {
			case tied == nil || c > best:
				best, tied = c, []string{name}
			case c == best:
				tied = append(tied, name)
			}
		}
		for _, name := range tied {
			if name == it.Gold {
				rate += 1 / float64(len(tied))
			}
		}
		chance += 1 / float64(len(count))
	}
	n := float64(len(items))
	return rate / n, chance / n
}

// TestNoNameCountShortcut checks that how often the facts mention a name
// does not give the answer away. Before the distractors evened the counts
// out, the answer of a 1-hop question was the most frequent name 67% of the
// time (12% by chance), and the fourth round's probes showed that the
// trained models had learnt that instead of looking facts up.
//
// At k = 1 neither the most nor the least frequent name may beat a random
// one by more than half; at every k the most frequent may not. At k >= 2
// the people between have two mentions by construction (reached, then
// followed), so the answer, named once by the chain, is the least frequent
// name more often than chance: the test only logs that.
func TestNoNameCountShortcut(t *testing.T) {
	for _, kind := range ChainKinds {
		for k := 1; k <= 4; k++ {
			items := Generate(11, 1000, []int{k}, []Kind{kind})
			most, chance := nameCountGuess(t, items, false)
			least, _ := nameCountGuess(t, items, true)
			t.Logf("%s k=%d: most frequent name %.3f, least frequent %.3f, random name %.3f", kind, k, most, least, chance)
			if most > 1.5*chance || (k == 1 && least > 1.5*chance) {
				t.Errorf("%s k=%d: the answer is the most frequent name in %.1f%% and the least frequent in %.1f%% of questions, a random name in %.1f%%",
					kind, k, 100*most, 100*least, 100*chance)
			}
		}
	}
}
