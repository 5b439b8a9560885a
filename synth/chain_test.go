package synth

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// chainProgram is the hops/branch program as the checker reads it, apart
// from the generator's types.
type chainProgram struct {
	Kind  string `json:"kind"`
	Facts []struct {
		Person, Rel, Value string
	} `json:"facts"`
	Person string   `json:"person"`
	Path   []string `json:"path"`
	Branch *struct {
		Rel, Value string
		Holds      bool
		Else       []string
	} `json:"branch"`
}

var respRE = regexp.MustCompile(`^([A-Z][a-z]+)'s ([a-z]+) is ([A-Z][a-z]+)[.,]`)

var factRE = regexp.MustCompile(`([A-Z][a-z]+)'s ([a-z]+) is ([A-Z][a-z]+)\.`)

// TestChainFamilies re-derives every hops and branch answer from the facts
// as the question states them (parsed from the text, not the program), and
// checks the rules of the families: 8-10 facts with unique (person,
// relation), the asked relations named by a synonym, a plan that names the
// start and the relations but none of the people reached, a control plan of
// the same shape with none of them, and a response that follows the facts.
func TestChainFamilies(t *testing.T) {
	syn := map[string]string{}
	for _, r := range Relations {
		for _, s := range r.Synonyms {
			syn[s] = r.Name
		}
	}
	orders := map[string]int{}
	holds := 0
	items := Generate(5, 120, []int{1, 2, 3, 4}, ChainKinds)
	for _, it := range items {
		var p chainProgram
		if err := json.Unmarshal([]byte(it.Meta["program"]), &p); err != nil {
			t.Fatal(err)
		}
		text := it.Question
		facts := map[[2]string]string{}
		for _, m := range factRE.FindAllStringSubmatch(text, -1) {
			key := [2]string{m[1], m[2]}
			if _, dup := facts[key]; dup {
				t.Fatalf("%s: two facts for %s's %s: %q", it.ID, m[1], m[2], text)
			}
			facts[key] = m[3]
		}
		if n := len(facts); n < 8 || n > 10 || n != len(p.Facts) {
			t.Fatalf("%s: %d facts in the text, %d in the program: %q", it.ID, n, len(p.Facts), text)
		}
		walk := func(rels []string) (string, []string) {
			cur, seen := p.Person, []string{}
			for _, rel := range rels {
				next, ok := facts[[2]string{cur, rel}]
				if !ok {
					t.Fatalf("%s: no fact for %s's %s", it.ID, cur, rel)
				}
				cur = next
				seen = append(seen, cur)
			}
			return cur, seen
		}
		if len(p.Path) != it.Steps {
			t.Fatalf("%s: %d relations for k=%d", it.ID, len(p.Path), it.Steps)
		}
		gold, reached := walk(p.Path)
		w, err := Work(it)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == "branch" {
			b := p.Branch
			actual := facts[[2]string{p.Person, b.Rel}]
			if (actual == b.Value) != b.Holds {
				t.Fatalf("%s: test %s's %s == %s is %v, program says %v", it.ID, p.Person, b.Rel, b.Value, actual == b.Value, b.Holds)
			}
			if b.Holds {
				holds++
			}
			other, otherReached := walk(b.Else)
			if !b.Holds {
				gold, reached, otherReached = other, otherReached, reached
			}
			reached = append(reached, otherReached...)
			if !strings.Contains(text, "If ") || !strings.Contains(text, "Otherwise, who is ") {
				t.Fatalf("%s: no if/otherwise question: %q", it.ID, text)
			}
			if !strings.Contains(w.Plan, "    if "+b.Rel+"(person) == \""+b.Value+"\":") || !strings.Contains(w.Plan, "    else:") {
				t.Fatalf("%s: plan has no if/else on the test:\n%s", it.ID, w.Plan)
			}
		}
		if gold != it.Gold {
			t.Fatalf("%s: the facts give %s, gold is %s", it.ID, gold, it.Gold)
		}
		// The question names each followed relation by one of its words.
		at := strings.Index(text, "Who is")
		if p.Kind == "branch" {
			at = strings.Index(text, "If ")
		}
		if at < 0 {
			t.Fatalf("%s: no question in %q", it.ID, text)
		}
		q := text[at:]
		if p.Kind == "hops" {
			switch {
			case !strings.Contains(q, "'s"):
				orders["of"]++
			case strings.HasPrefix(q, "Who is the "):
				orders["mixed"]++
			default:
				orders["possessive"]++
			}
		}
		for _, word := range regexp.MustCompile(`[a-z]+`).FindAllString(q, -1) {
			if rel, ok := syn[word]; ok && rel != word {
				orders["synonym"]++
			}
		}
		// The plans name the start and relations, never a person reached.
		for _, plan := range []string{w.Plan, w.NLPlan} {
			if !strings.Contains(plan, p.Person) {
				t.Fatalf("%s: plan does not name the start %s:\n%s", it.ID, p.Person, plan)
			}
			for _, x := range reached {
				if x != p.Person && regexp.MustCompile(`\b`+x+`\b`).MatchString(plan) {
					t.Fatalf("%s: plan names %s, a person reached:\n%s", it.ID, x, plan)
				}
			}
			for _, rel := range p.Path {
				if !strings.Contains(plan, rel) {
					t.Fatalf("%s: plan does not name the relation %s:\n%s", it.ID, rel, plan)
				}
			}
		}
		// The response states each fact followed, in order, then the answer.
		lines := strings.Split(w.Response, "\n")
		if lines[len(lines)-1] != "The answer is "+gold+"." {
			t.Fatalf("%s: response ends %q", it.ID, lines[len(lines)-1])
		}
		for _, l := range lines[:len(lines)-1] {
			if m := respRE.FindStringSubmatch(l); m == nil || facts[[2]string{m[1], m[2]}] != m[3] {
				t.Fatalf("%s: response line %q is not a stated fact", it.ID, l)
			}
		}
		// The control keeps the plan's lines and shape, with its content masked.
		if strings.Count(w.Control, "\n") != strings.Count(w.Plan, "\n") || strings.Contains(w.Control, p.Person) ||
			strings.Contains(w.Control, p.Path[0]) || !strings.Contains(w.Control, Mask) {
			t.Fatalf("%s: control\n%s\nfor plan\n%s", it.ID, w.Control, w.Plan)
		}
	}
	for _, o := range []string{"of", "possessive", "mixed", "synonym"} {
		if orders[o] < 20 {
			t.Errorf("question form %q used %d times in %d items: %v", o, orders[o], len(items), orders)
		}
	}
	if holds < 150 || holds > 330 {
		t.Errorf("branch test holds in %d of 480 items", holds)
	}
}
