package synth

import (
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// The hops and branch families (issue 23): facts about people ("Ann's boss
// is Bob."), shuffled among distractors, and a question that follows k of
// them. They are built so that a plan can carry something the response
// lacks: the question names relations by synonyms ("manager" for boss) and
// in two word orders ("Ann's tutor's manager", "the manager of the tutor of
// Ann"), while the plan names the canonical relations in the order they
// are followed, and the branch family's plan says which branch is taken
// after which test.

// Relation is one relation between people: its canonical name (used in
// the facts, the plans and the responses) and the words a question may use
// for it (the canonical name first).
type Relation struct {
	Name     string
	Synonyms []string
}

// Relations are the relations of the hops and branch families.
var Relations = []Relation{
	{"boss", []string{"boss", "manager", "supervisor"}},
	{"mentor", []string{"mentor", "tutor", "coach"}},
	{"friend", []string{"friend", "pal", "buddy"}},
	{"rival", []string{"rival", "opponent", "competitor"}},
	{"doctor", []string{"doctor", "physician", "medic"}},
	{"partner", []string{"partner", "spouse", "mate"}},
}

// Fact is one statement "Person's Rel is Value." of a hops or branch
// problem.
type Fact struct {
	Person string `json:"person"`
	Rel    string `json:"rel"`
	Value  string `json:"value"`
}

// Condition is the test of a branch problem: "If Start's Rel is Value".
type Condition struct {
	Rel   string `json:"rel"`
	Value string `json:"value"`
	// Holds says whether the test is true (the then-branch is taken).
	Holds bool `json:"holds"`
	// Else are the relations followed from Start when the test fails
	// (Program.Path when it holds).
	Else []string `json:"else"`
}

// chainFacts are the numbers of facts of a hops or branch problem.
const (
	minFacts = 8
	maxFacts = 10
)

// world is the fact table being built: at most one value per (person,
// relation), as in a function.
type world struct {
	people []string
	facts  []Fact
	has    map[[2]string]string
}

func (w *world) add(person, rel, value string) bool {
	key := [2]string{person, rel}
	if _, ok := w.has[key]; ok || person == value {
		return false
	}
	w.has[key] = value
	w.facts = append(w.facts, Fact{person, rel, value})
	return true
}

// chain adds facts for following rels from start through fresh people
// (none seen in used) and returns the people reached, start first.
func (w *world) chain(r *rng, start string, rels []string, used map[string]bool) []string {
	path := []string{start}
	cur := start
	for _, rel := range rels {
		if v, ok := w.has[[2]string{cur, rel}]; ok {
			cur = v
		} else {
			next := w.fresh(r, used)
			w.add(cur, rel, next)
			cur = next
		}
		used[cur] = true
		path = append(path, cur)
	}
	return path
}

// fresh picks a person not in used.
func (w *world) fresh(r *rng, used map[string]bool) string {
	for {
		p := w.people[r.intn(len(w.people))]
		if !used[p] {
			used[p] = true
			return p
		}
	}
}

// distract adds facts, none of which changes where a followed path leads
// (no (person, relation) gets a second value), until there are n: the same
// person with another relation, the same relation for another person, and
// a decoy chain of the path's relations from another start.
//
// lookedUp are the people whose facts the question follows (the start and
// the people between), never the answer: giving the answer facts of its own
// made it the most frequent name of the question (the fourth round found
// that 67% of 1-hop answers were, and that the models had learnt that
// instead of looking facts up).
func (w *world) distract(r *rng, n int, lookedUp []string, rels []string) {
	for tries := 0; len(w.facts) < n && tries < 1000; tries++ {
		switch r.intn(3) {
		case 0: // a person whose fact is looked up, with another relation
			p := lookedUp[r.intn(len(lookedUp))]
			rel := Relations[r.intn(len(Relations))].Name
			w.add(p, rel, w.rare(r, p))
		case 1: // a followed relation, for someone else
			rel := rels[r.intn(len(rels))]
			p := w.rare(r, "")
			w.add(p, rel, w.rare(r, p))
		case 2: // a decoy chain of the same relations
			cur := w.rare(r, "")
			for _, rel := range rels[:min(len(rels), n-len(w.facts))] {
				next := w.rare(r, cur)
				if v, ok := w.has[[2]string{cur, rel}]; ok {
					next = v
				} else if !w.add(cur, rel, next) {
					break
				}
				cur = next
			}
		}
	}
}

// rare picks one of the people the facts name least often so far (never
// except), so that the distractors even out how often each name occurs
// and no name, least of all the answer, stands out by its count. Picked
// uniformly instead, the answer (named once by the chain, then at random
// like anyone else) was still the most frequent name of 28% of 1-hop
// questions, against 12% for a name picked at random.
func (w *world) rare(r *rng, except string) string {
	count := map[string]int{}
	for _, f := range w.facts {
		count[f.Person]++
		count[f.Value]++
	}
	least, pool := -1, []string(nil)
	for _, p := range w.people {
		if p == except {
			continue
		}
		switch c := count[p]; {
		case least < 0 || c < least:
			least, pool = c, []string{p}
		case c == least:
			pool = append(pool, p)
		}
	}
	return pool[r.intn(len(pool))]
}

// pickRels picks k relations, no two neighbours equal.
func pickRels(r *rng, k int) []string {
	var rels []string
	for len(rels) < k {
		rel := Relations[r.intn(len(Relations))].Name
		if len(rels) > 0 && rels[len(rels)-1] == rel {
			continue
		}
		rels = append(rels, rel)
	}
	return rels
}

// synonym returns a word for the relation named rel.
func synonym(r *rng, rel string) string {
	for _, x := range Relations {
		if x.Name == rel {
			return x.Synonyms[r.intn(len(x.Synonyms))]
		}
	}
	return rel
}

// phrase names the person reached from start by rels, in one of three word
// orders: "Ann's tutor's manager", "the manager of the tutor of Ann", or
// "the manager of Ann's tutor".
func phrase(r *rng, start string, rels []string) string {
	words := make([]string, len(rels))
	for i, rel := range rels {
		words[i] = synonym(r, rel)
	}
	order := r.intn(3)
	if len(rels) == 1 && order == 2 {
		order = 0
	}
	switch order {
	case 0:
		return start + "'s " + strings.Join(words, "'s ")
	case 1:
		s := start
		for _, w := range words {
			s = "the " + w + " of " + s
		}
		return s
	}
	s := start + "'s " + words[0]
	for _, w := range words[1:] {
		s = "the " + w + " of " + s
	}
	return s
}

// newWorld starts a fact table over 12 people.
func newWorld(r *rng) *world {
	return &world{people: pickNames(r, 12), has: map[[2]string]string{}}
}

// shuffled returns the facts as sentences in random order.
func (w *world) shuffled(r *rng) string {
	r.shuffle(len(w.facts), func(i, j int) { w.facts[i], w.facts[j] = w.facts[j], w.facts[i] })
	var b strings.Builder
	for i, f := range w.facts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s's %s is %s.", f.Person, f.Rel, f.Value)
	}
	return b.String()
}

// genHops builds a k-hop question: follow k relations from a start person.
func genHops(r *rng, k int) problem {
	w := newWorld(r)
	rels := pickRels(r, k)
	start := w.people[0]
	used := map[string]bool{start: true}
	path := w.chain(r, start, rels, used)
	w.distract(r, r.between(minFacts, maxFacts), path[:k], rels)
	q := w.shuffled(r) + " Who is " + phrase(r, start, rels) + "?"
	return problem{question: q, gold: path[k], kind: answer.Exact,
		program: Program{Facts: w.facts, Person: start, Path: rels}}
}

// genBranch builds an if/else question: "If Ann's boss is Bob, who is
// Ann's mentor? Otherwise, who is Ann's friend?", where each branch follows
// k relations from the start person.
func genBranch(r *rng, k int) problem {
	w := newWorld(r)
	start := w.people[0]
	used := map[string]bool{start: true}
	condRel := Relations[r.intn(len(Relations))].Name
	condValue := w.fresh(r, used)
	w.add(start, condRel, condValue)
	thenRels, elseRels := pickRels(r, k), pickRels(r, k)
	for thenRels[0] == elseRels[0] || thenRels[0] == condRel || elseRels[0] == condRel {
		thenRels, elseRels = pickRels(r, k), pickRels(r, k)
	}
	thenPath := w.chain(r, start, thenRels, used)
	elsePath := w.chain(r, start, elseRels, used)
	holds := r.intn(2) == 0
	asked := condValue
	if !holds {
		asked = w.fresh(r, used)
	}
	lookedUp := append(append([]string{}, thenPath[:k]...), elsePath[1:k]...)
	w.distract(r, r.between(minFacts, maxFacts), lookedUp, append(append([]string{}, thenRels...), elseRels...))
	q := fmt.Sprintf("%s If %s is %s, who is %s? Otherwise, who is %s?", w.shuffled(r),
		phrase(r, start, []string{condRel}), asked, phrase(r, start, thenRels), phrase(r, start, elseRels))
	gold := thenPath[k]
	if !holds {
		gold = elsePath[k]
	}
	return problem{question: q, gold: gold, kind: answer.Exact,
		program: Program{Facts: w.facts, Person: start, Path: thenRels,
			Branch: &Condition{Rel: condRel, Value: asked, Holds: holds, Else: elseRels}}}
}

// lookup returns Person's Rel among facts.
func lookup(facts []Fact, person, rel string) (string, bool) {
	for _, f := range facts {
		if f.Person == person && f.Rel == rel {
			return f.Value, true
		}
	}
	return "", false
}

// follow writes one response line per relation followed from start and
// returns the person reached ("" when a fact is missing).
func follow(facts []Fact, start string, rels []string, resp *[]string) string {
	cur := start
	for _, rel := range rels {
		next, ok := lookup(facts, cur, rel)
		if !ok {
			return ""
		}
		*resp = append(*resp, fmt.Sprintf("%s's %s is %s.", cur, rel, next))
		cur = next
	}
	return cur
}

// codeHops is the code plan's lines that follow rels, indented by pad.
func codeHops(rels []string, pad string) []string {
	var out []string
	for _, rel := range rels {
		out = append(out, fmt.Sprintf("%sperson = %s(person)", pad, rel))
	}
	return out
}

// nlHops says in words which relations are followed from start.
func nlHops(start string, rels []string) string {
	s := fmt.Sprintf("find %s's %s", start, rels[0])
	for _, rel := range rels[1:] {
		s += ", then that person's " + rel
	}
	return s
}

func workHops(p Program) (Worked, string) {
	var resp []string
	got := follow(p.Facts, p.Person, p.Path, &resp)
	plan := append([]string{"def solve():", fmt.Sprintf("    person = %q", p.Person)}, codeHops(p.Path, "    ")...)
	plan = append(plan, "    return person", "", "print(solve())")
	nl := []string{fmt.Sprintf("Start from %s.", p.Person)}
	for i, rel := range p.Path {
		if i == 0 {
			nl = append(nl, fmt.Sprintf("Find %s's %s.", p.Person, rel))
		} else {
			nl = append(nl, fmt.Sprintf("Find that person's %s.", rel))
		}
	}
	nl = append(nl, "Give that person's name.")
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, got
}

func workBranch(p Program) (Worked, string) {
	b := p.Branch
	if b == nil {
		return Worked{}, ""
	}
	actual, ok := lookup(p.Facts, p.Person, b.Rel)
	if !ok {
		return Worked{}, ""
	}
	var resp []string
	rels := p.Path
	if actual == b.Value {
		resp = append(resp, fmt.Sprintf("%s's %s is %s, so the condition holds.", p.Person, b.Rel, actual))
	} else {
		resp = append(resp, fmt.Sprintf("%s's %s is %s, not %s, so the condition fails.", p.Person, b.Rel, actual, b.Value))
		rels = b.Else
	}
	got := follow(p.Facts, p.Person, rels, &resp)
	plan := []string{"def solve():", fmt.Sprintf("    person = %q", p.Person),
		fmt.Sprintf("    if %s(person) == %q:", b.Rel, b.Value)}
	plan = append(plan, codeHops(p.Path, "        ")...)
	plan = append(plan, "    else:")
	plan = append(plan, codeHops(b.Else, "        ")...)
	plan = append(plan, "    return person", "", "print(solve())")
	nl := []string{
		fmt.Sprintf("Check whether %s's %s is %s.", p.Person, b.Rel, b.Value),
		"If so, " + nlHops(p.Person, p.Path) + ".",
		"Otherwise, " + nlHops(p.Person, b.Else) + ".",
		"Give that person's name.",
	}
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, got
}
