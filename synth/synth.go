// Package synth generates synthetic multi-step reasoning problems with
// exact answers and a controlled number of reasoning steps k, so that
// accuracy can be measured as a function of k:
//
//   - Arith: a word problem of k chained integer operations ("Ann has 12
//     apples. First, she buys 5 more. Then, she gives away a third of
//     them. ... How many apples does Ann have now?"); every division is
//     exact.
//   - List: k list operations (sort, reverse, keep the first n, drop,
//     append, keep even/odd, add to each) followed by "what is the sum".
//   - String: k string operations (reverse, upper/lower case, keep first
//     or last letters, drop letters, append, remove or replace a letter),
//     where the last may instead be "count the letter c".
//   - Order: people in a line with k constraints ("Bea is somewhere to the
//     left of Cal", "Dan is not in position 2") that fix who stands at the
//     asked position; every constraint is needed and the answer is unique.
//   - Truth: a chain of k statements about truth-tellers and liars ("Ann
//     tells the truth. Ben says Ann lies. ... Does Eve tell the truth?").
//
// Each item carries its machine-readable Program as JSON in
// Meta["program"], so that an independent checker can re-derive the gold
// answer. Generation is deterministic: an item depends only on (seed,
// kind, k, index), and its id is "synth-<kind>-k<k>-<index>".
package synth

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
)

// Kind is a family of synthetic problems.
type Kind string

// The problem families.
const (
	Arith  Kind = "arith"
	List   Kind = "list"
	String Kind = "string"
	Order  Kind = "order"
	Truth  Kind = "truth"
	// Hops: 8–10 shuffled facts about people ("Ann's boss is Bob."), some
	// of them distractors, and a question that follows k of them, naming
	// the relations by synonyms and in varied word order.
	Hops Kind = "hops"
	// Branch: the same facts, and an if/else question whose two branches
	// each follow k relations ("If Ann's boss is Bob, who is Ann's mentor?
	// Otherwise, who is Ann's friend?").
	Branch Kind = "branch"
)

// Kinds lists the first five kinds (the families of the first miniature)
// in a stable order.
var Kinds = []Kind{Arith, List, String, Order, Truth}

// ChainKinds are the families built for the redesigned miniature (issue
// 23), where the plan can carry what the response lacks.
var ChainKinds = []Kind{Hops, Branch}

// AllKinds lists every Kind.
var AllKinds = append(append([]Kind{}, Kinds...), ChainKinds...)

// MaxSteps is the largest k each kind supports. Order puzzles need about
// one more person per two constraints, and brute-force checking of the
// uniqueness of their answer grows factorially, so they stop earlier.
// Hops and branch problems hold at most 10 facts.
var MaxSteps = map[Kind]int{Arith: 40, List: 40, String: 40, Order: 8, Truth: 40, Hops: 4, Branch: 4}

// ParseKind turns a name such as "arith" into a Kind.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := MaxSteps[k]; ok {
		return k, nil
	}
	names := make([]string, len(AllKinds))
	for i, kk := range AllKinds {
		names[i] = string(kk)
	}
	return "", fmt.Errorf("unknown synthetic kind %q (want one of %s)", s, strings.Join(names, ", "))
}

// Validate checks step counts and kinds before Generate, which skips
// invalid ones silently because its signature has no error.
func Validate(steps []int, kinds []Kind) error {
	if len(steps) == 0 {
		return fmt.Errorf("no step counts given")
	}
	if len(kinds) == 0 {
		return fmt.Errorf("no kinds given")
	}
	for _, kind := range kinds {
		max, ok := MaxSteps[kind]
		if !ok {
			_, err := ParseKind(string(kind))
			return err
		}
		for _, k := range steps {
			if k < 1 || k > max {
				return fmt.Errorf("%s problems support 1 to %d steps, not %d", kind, max, k)
			}
		}
	}
	return nil
}

// Op is one step of a program. Which fields are used depends on Name; see
// the kind generators for the meaning of each operation.
type Op struct {
	Name string `json:"op"`
	N    int    `json:"n,omitempty"`
	S    string `json:"s,omitempty"`
	T    string `json:"t,omitempty"`
}

// Constraint is one condition of an Order puzzle over 1-based positions:
// "at" (A is at position N), "not_at", "left_of" (A somewhere left of B),
// "right_of", "next_to" (A immediately left of B), "adjacent",
// "not_adjacent", "end" (A at either end), "gap" (exactly N people
// between A and B).
type Constraint struct {
	Name string `json:"c"`
	A    string `json:"a"`
	B    string `json:"b,omitempty"`
	N    int    `json:"n,omitempty"`
}

// Statement is one Truth puzzle line: Speaker says Target tells the truth
// (Claim true) or lies (Claim false).
type Statement struct {
	Speaker string `json:"speaker"`
	Target  string `json:"target"`
	Claim   bool   `json:"claim"`
}

// Program is the machine-readable form of a problem, stored as JSON in
// Meta["program"]. Only the fields of its Kind are set.
type Program struct {
	Kind Kind `json:"kind"`
	// Arith: the starting amount; Ops are add, sub, mul, div (keep 1/N),
	// lose_frac (give away 1/N).
	Start int `json:"start,omitempty"`
	// List: the starting list; Ops are sort, sort_desc, reverse, take,
	// drop, append, keep_even, keep_odd, add_each; the answer is the sum.
	List []int `json:"list,omitempty"`
	// String: the starting word; Ops are reverse, upper, lower,
	// take_first, take_last, drop_first, append, remove (S), replace (S
	// by T), and count (S, last only; the answer is then a number).
	Word string `json:"word,omitempty"`
	Ops  []Op   `json:"ops,omitempty"`
	// Order: the people, the constraints, and the asked position.
	People      []string     `json:"people,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Position    int          `json:"position,omitempty"`
	// Truth: the first person's known status, the statements in order,
	// and whose truthfulness is asked.
	FirstTruthful *bool       `json:"first_truthful,omitempty"`
	Statements    []Statement `json:"statements,omitempty"`
	Ask           string      `json:"ask,omitempty"`
	// Hops and branch: the facts (in the order the question states them),
	// the start person and the relations followed from it (for branch, the
	// then-branch's), and for branch the test and the else-branch.
	Facts  []Fact     `json:"facts,omitempty"`
	Person string     `json:"person,omitempty"`
	Path   []string   `json:"path,omitempty"`
	Branch *Condition `json:"branch,omitempty"`
}

// problem is what a kind generator returns.
type problem struct {
	question string
	gold     string
	kind     answer.Kind
	program  Program
}

// Generate makes n problems for every combination of kind and step count,
// ordered by kind, then k, then index. Unknown kinds and step counts
// outside 1..MaxSteps are skipped; call Validate first to report them.
// The same arguments always give identical items.
func Generate(seed int64, n int, steps []int, kinds []Kind) []benchdata.Item {
	var items []benchdata.Item
	for _, kind := range kinds {
		max, ok := MaxSteps[kind]
		if !ok {
			continue
		}
		for _, k := range steps {
			if k < 1 || k > max {
				continue
			}
			for i := 0; i < n; i++ {
				items = append(items, makeItem(seed, kind, k, i))
			}
		}
	}
	return items
}

func makeItem(seed int64, kind Kind, k, index int) benchdata.Item {
	r := itemRNG(seed, kind, k, index)
	var p problem
	switch kind {
	case Arith:
		p = genArith(r, k)
	case List:
		p = genList(r, k)
	case String:
		p = genString(r, k)
	case Order:
		p = genOrder(r, k)
	case Truth:
		p = genTruth(r, k)
	case Hops:
		p = genHops(r, k)
	case Branch:
		p = genBranch(r, k)
	}
	p.program.Kind = kind
	prog, err := json.Marshal(p.program)
	if err != nil {
		// Program holds only ints, strings and bools: cannot fail.
		prog = []byte("{}")
	}
	return benchdata.Item{
		ID:       fmt.Sprintf("synth-%s-k%d-%04d", kind, k, index),
		Question: p.question,
		Gold:     p.gold,
		Kind:     p.kind,
		Steps:    k,
		Meta: map[string]string{
			"generator":  "synth",
			"synth_kind": string(kind),
			"program":    string(prog),
		},
	}
}

// names are the people of every problem family; there are enough for the
// longest Truth chain (MaxSteps+1 people).
var names = []string{
	"Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade",
	"Kim", "Leo", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara",
	"Uma", "Vic", "Wen", "Xena", "Yusuf", "Zoe", "Abel", "Bree", "Cruz", "Dana",
	"Emil", "Flor", "Gwen", "Hugo", "Iris", "Joel", "Kai", "Lena", "Milo", "Nina",
	"Omar", "Pia",
}

// pronoun returns the subject pronoun used for a name in Arith problems.
func pronoun(name string) string {
	switch name {
	case "Ben", "Dev", "Eli", "Gus", "Ivan", "Leo", "Noah", "Paul", "Sam", "Vic",
		"Yusuf", "Abel", "Cruz", "Emil", "Hugo", "Joel", "Milo", "Omar":
		return "he"
	}
	return "she"
}

// pickNames returns n distinct names in random order.
func pickNames(r *rng, n int) []string {
	pool := append([]string(nil), names...)
	r.shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	return pool[:n]
}

// connector introduces the i-th of k steps in running text.
func connector(i, k int) string {
	switch {
	case k == 1:
		return ""
	case i == 0:
		return "First, "
	case i == k-1:
		return "Finally, "
	}
	return []string{"Then, ", "After that, ", "Next, ", "Later, "}[(i-1)%4]
}

// Item returns the single item Generate makes for (seed, kind, k, index),
// so that callers that skip some items (duplicates, excluded prompts) can
// draw the next one. kind and k must be valid (see Validate).
func Item(seed int64, kind Kind, k, index int) benchdata.Item {
	return makeItem(seed, kind, k, index)
}
