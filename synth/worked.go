package synth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/benchdata"
)

// Worked is the teaching material of one item, derived from its Program
// alone: a code-form plan, the same steps as numbered sentences, and a
// worked solution.
//
// The plans name every step but never its result, so that a model trained
// on them must still compute; the response computes every step and ends
// with "The answer is X.", the marker answer.Final reads first. Responses
// are terse on purpose: the models trained on them are small and are
// evaluated by generating every byte, so each word costs time.
type Worked struct {
	// Plan is Python-like pseudocode: a solve() function with one
	// statement per step, with loops and conditions where the kind has
	// them (the truth chain, the order filters).
	Plan string
	// NLPlan is the same steps as numbered English sentences.
	NLPlan string
	// Response is the step-by-step solution ending in the answer line.
	Response string
	// Control is the code plan's skeleton with every name, relation and
	// number replaced by the one word Mask, so that it has the plan's
	// layout and about its length in tokens but none of its content (the
	// miniature's control arm: extra tokens without the plan's content).
	Control string
}

// Work derives the Worked material of a synth item from its
// Meta["program"]. It fails for items that are not synthetic or whose
// program does not give the item's gold answer (a corrupt row).
func Work(it benchdata.Item) (Worked, error) {
	raw, ok := it.Meta["program"]
	if !ok {
		return Worked{}, fmt.Errorf("item %s has no synthetic program", it.ID)
	}
	var p Program
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Worked{}, fmt.Errorf("item %s: program: %w", it.ID, err)
	}
	var w Worked
	var got string
	switch p.Kind {
	case Arith:
		w, got = workArith(p)
	case List:
		w, got = workList(p)
	case String:
		w, got = workString(p)
	case Order:
		w, got = workOrder(p)
	case Truth:
		w, got = workTruth(p)
	case Hops:
		w, got = workHops(p)
	case Branch:
		w, got = workBranch(p)
	default:
		return Worked{}, fmt.Errorf("item %s: unknown synthetic kind %q", it.ID, p.Kind)
	}
	if got != it.Gold {
		return Worked{}, fmt.Errorf("item %s: worked solution gives %q, gold is %q", it.ID, got, it.Gold)
	}
	w.Response += "\nThe answer is " + got + "."
	w.Control = MaskPlan(w.Plan)
	return w, nil
}

// numbered joins sentences as "1. a\n2. b".
func numbered(steps []string) string {
	var b strings.Builder
	for i, s := range steps {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d. %s", i+1, s)
	}
	return b.String()
}

func workArith(p Program) (Worked, string) {
	x := p.Start
	plan := []string{"def solve():", fmt.Sprintf("    total = %d", x)}
	nl := []string{fmt.Sprintf("Start with %d.", x)}
	resp := []string{fmt.Sprintf("Start: %d.", x)}
	fractions := map[int]string{2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}
	for _, op := range p.Ops {
		y := x
		switch op.Name {
		case "add":
			y = x + op.N
			plan = append(plan, fmt.Sprintf("    total += %d", op.N))
			nl = append(nl, fmt.Sprintf("Add %d.", op.N))
			resp = append(resp, fmt.Sprintf("%d + %d = %d.", x, op.N, y))
		case "sub":
			y = x - op.N
			plan = append(plan, fmt.Sprintf("    total -= %d", op.N))
			nl = append(nl, fmt.Sprintf("Subtract %d.", op.N))
			resp = append(resp, fmt.Sprintf("%d - %d = %d.", x, op.N, y))
		case "mul":
			y = x * op.N
			plan = append(plan, fmt.Sprintf("    total *= %d", op.N))
			nl = append(nl, fmt.Sprintf("Multiply by %d.", op.N))
			resp = append(resp, fmt.Sprintf("%d * %d = %d.", x, op.N, y))
		case "div":
			y = x / op.N
			plan = append(plan, fmt.Sprintf("    total //= %d  # keep one of %d equal boxes", op.N, op.N))
			nl = append(nl, fmt.Sprintf("Divide by %d.", op.N))
			resp = append(resp, fmt.Sprintf("%d / %d = %d.", x, op.N, y))
		case "lose_frac":
			y = x - x/op.N
			plan = append(plan, fmt.Sprintf("    total -= total // %d  # give away %s", op.N, fractions[op.N]))
			nl = append(nl, fmt.Sprintf("Take away %s.", fractions[op.N]))
			resp = append(resp, fmt.Sprintf("%d - %d / %d = %d - %d = %d.", x, x, op.N, x, x/op.N, y))
		}
		x = y
	}
	plan = append(plan, "    return total", "", "print(solve())")
	nl = append(nl, "Give the final amount.")
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, strconv.Itoa(x)
}

func workList(p Program) (Worked, string) {
	xs := slices.Clone(p.List)
	plan := []string{"def solve():", "    xs = " + formatList(xs)}
	nl := []string{"Start with the given list."}
	var resp []string
	for _, op := range p.Ops {
		var code, sentence, label string
		switch op.Name {
		case "sort":
			slices.Sort(xs)
			code, sentence, label = "xs = sorted(xs)", "Sort it in ascending order.", "Sort"
		case "sort_desc":
			slices.Sort(xs)
			slices.Reverse(xs)
			code, sentence, label = "xs = sorted(xs, reverse=True)", "Sort it in descending order.", "Sort descending"
		case "reverse":
			slices.Reverse(xs)
			code, sentence, label = "xs = xs[::-1]", "Reverse it.", "Reverse"
		case "take":
			xs = slices.Clone(xs[:op.N])
			code, sentence, label = fmt.Sprintf("xs = xs[:%d]", op.N), fmt.Sprintf("Keep the first %d numbers.", op.N), fmt.Sprintf("First %d", op.N)
		case "drop":
			xs = slices.Clone(xs[op.N:])
			code, sentence, label = fmt.Sprintf("xs = xs[%d:]", op.N), fmt.Sprintf("Remove the first %d numbers.", op.N), fmt.Sprintf("Drop %d", op.N)
		case "append":
			xs = append(xs, op.N)
			code, sentence, label = fmt.Sprintf("xs.append(%d)", op.N), fmt.Sprintf("Append %d.", op.N), fmt.Sprintf("Append %d", op.N)
		case "keep_even":
			xs = filter(xs, func(x int) bool { return x%2 == 0 })
			code, sentence, label = "xs = [x for x in xs if x % 2 == 0]", "Keep the even numbers.", "Even"
		case "keep_odd":
			xs = filter(xs, func(x int) bool { return x%2 != 0 })
			code, sentence, label = "xs = [x for x in xs if x % 2 == 1]", "Keep the odd numbers.", "Odd"
		case "add_each":
			for i := range xs {
				xs[i] += op.N
			}
			code, sentence, label = fmt.Sprintf("xs = [x + %d for x in xs]", op.N), fmt.Sprintf("Add %d to each number.", op.N), fmt.Sprintf("Add %d", op.N)
		}
		plan = append(plan, "    "+code)
		nl = append(nl, sentence)
		resp = append(resp, label+": "+formatList(xs))
	}
	sum := 0
	terms := make([]string, len(xs))
	for i, x := range xs {
		sum += x
		terms[i] = strconv.Itoa(x)
	}
	plan = append(plan, "    return sum(xs)", "", "print(solve())")
	nl = append(nl, "Add up the numbers that are left.")
	resp = append(resp, fmt.Sprintf("Sum: %s = %d", strings.Join(terms, " + "), sum))
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, strconv.Itoa(sum)
}

func workString(p Program) (Worked, string) {
	s := p.Word
	plan := []string{"def solve():", fmt.Sprintf("    s = %q", s)}
	nl := []string{"Start with the given word."}
	var resp []string
	result := ""
	for _, op := range p.Ops {
		var code, sentence, label string
		switch op.Name {
		case "reverse":
			s = reverseString(s)
			code, sentence, label = "s = s[::-1]", "Reverse it.", "Reverse"
		case "upper":
			s = strings.ToUpper(s)
			code, sentence, label = "s = s.upper()", "Make it uppercase.", "Upper"
		case "lower":
			s = strings.ToLower(s)
			code, sentence, label = "s = s.lower()", "Make it lowercase.", "Lower"
		case "take_first":
			s = s[:op.N]
			code, sentence, label = fmt.Sprintf("s = s[:%d]", op.N), fmt.Sprintf("Keep the first %d characters.", op.N), fmt.Sprintf("First %d", op.N)
		case "take_last":
			s = s[len(s)-op.N:]
			code, sentence, label = fmt.Sprintf("s = s[-%d:]", op.N), fmt.Sprintf("Keep the last %d characters.", op.N), fmt.Sprintf("Last %d", op.N)
		case "drop_first":
			s = s[op.N:]
			code, sentence, label = fmt.Sprintf("s = s[%d:]", op.N), fmt.Sprintf("Remove the first %d characters.", op.N), fmt.Sprintf("Drop %d", op.N)
		case "append":
			s += op.S
			code, sentence, label = fmt.Sprintf("s = s + %q", op.S), fmt.Sprintf("Append %q.", op.S), fmt.Sprintf("Append %q", op.S)
		case "remove":
			s = strings.ReplaceAll(s, op.S, "")
			code, sentence, label = fmt.Sprintf("s = s.replace(%q, \"\")", op.S), fmt.Sprintf("Remove every %q.", op.S), fmt.Sprintf("Remove %q", op.S)
		case "replace":
			s = strings.ReplaceAll(s, op.S, op.T)
			code, sentence, label = fmt.Sprintf("s = s.replace(%q, %q)", op.S, op.T), fmt.Sprintf("Replace %q with %q.", op.S, op.T), fmt.Sprintf("Replace %q with %q", op.S, op.T)
		case "count":
			n := strings.Count(s, op.S)
			result = strconv.Itoa(n)
			plan = append(plan, fmt.Sprintf("    return s.count(%q)", op.S))
			nl = append(nl, fmt.Sprintf("Count the %q characters.", op.S))
			resp = append(resp, fmt.Sprintf("Count %q in %q: %d", op.S, s, n))
			continue
		}
		plan = append(plan, "    "+code)
		nl = append(nl, sentence)
		resp = append(resp, fmt.Sprintf("%s: %q", label, s))
	}
	if result == "" {
		result = s
		plan = append(plan, "    return s")
		nl = append(nl, "Give the final string.")
	}
	plan = append(plan, "", "print(solve())")
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, result
}

func workTruth(p Program) (Worked, string) {
	if p.FirstTruthful == nil || len(p.Statements) == 0 {
		return Worked{}, ""
	}
	first := p.Statements[0].Target
	truthful := map[string]bool{first: *p.FirstTruthful}
	var stmts []string
	for _, st := range p.Statements {
		stmts = append(stmts, fmt.Sprintf("(%q, %q, %s)", st.Speaker, st.Target, pyBool(st.Claim)))
	}
	plan := []string{
		"def solve():",
		fmt.Sprintf("    truthful = {%q: %s}", first, pyBool(*p.FirstTruthful)),
		"    # (speaker, target, claims the target tells the truth)",
		"    statements = [" + strings.Join(stmts, ", ") + "]",
		"    for speaker, target, claim in statements:",
		"        truthful[speaker] = claim == truthful[target]",
		fmt.Sprintf("    return \"yes\" if truthful[%q] else \"no\"", p.Ask),
		"",
		"print(solve())",
	}
	nl := []string{fmt.Sprintf("Note whether %s tells the truth.", first)}
	resp := []string{fmt.Sprintf("%s %s.", first, truthVerb(*p.FirstTruthful))}
	for _, st := range p.Statements {
		nl = append(nl, fmt.Sprintf("Decide %s from the claim about %s.", st.Speaker, st.Target))
		right := st.Claim == truthful[st.Target]
		truthful[st.Speaker] = right
		verdict := "false"
		if right {
			verdict = "true"
		}
		resp = append(resp, fmt.Sprintf("%s says %s %s: %s, so %s %s.", st.Speaker, st.Target, truthVerb(st.Claim), verdict, st.Speaker, truthVerb(right)))
	}
	nl = append(nl, fmt.Sprintf("Answer whether %s tells the truth.", p.Ask))
	gold := "no"
	if truthful[p.Ask] {
		gold = "yes"
	}
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, gold
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// workOrder filters all line-ups by one constraint per step; the response
// tracks how many line-ups survive and who can still stand at the asked
// position, until one person is left.
func workOrder(p Program) (Worked, string) {
	m := len(p.People)
	if m == 0 || p.Position < 1 || p.Position > m {
		return Worked{}, ""
	}
	quoted := make([]string, m)
	index := make(map[string]int, m)
	for i, name := range p.People {
		quoted[i] = strconv.Quote(name)
		index[name] = i
	}
	plan := []string{
		"from itertools import permutations",
		"",
		"def pos(line, name):",
		"    return line.index(name) + 1",
		"",
		"def solve():",
		"    lines = list(permutations([" + strings.Join(quoted, ", ") + "]))",
	}
	nl := []string{"List every order of the people."}
	perms := permutations(m)
	alive := perms
	resp := []string{fmt.Sprintf("%d orders.", len(perms))}
	for _, c := range p.Constraints {
		plan = append(plan, fmt.Sprintf("    lines = [l for l in lines if %s]", constraintCode(c, m)))
		nl = append(nl, "Keep the orders where "+lowerFirst(strings.TrimSuffix(constraintText(c), "."))+".")
		var next []arrangement
		for _, a := range alive {
			if holds(c, a, index) {
				next = append(next, a)
			}
		}
		alive = next
		resp = append(resp, fmt.Sprintf("%s %d left; position %d: %s.",
			constraintText(c), len(alive), p.Position, strings.Join(peopleAt(alive, p.People, p.Position), ", ")))
	}
	plan = append(plan, fmt.Sprintf("    return lines[0][%d]", p.Position-1), "", "print(solve())")
	nl = append(nl, fmt.Sprintf("Name the person in position %d.", p.Position))
	who := peopleAt(alive, p.People, p.Position)
	if len(who) != 1 {
		return Worked{}, ""
	}
	return Worked{Plan: strings.Join(plan, "\n"), NLPlan: numbered(nl), Response: strings.Join(resp, "\n")}, who[0]
}

// lowerFirst lower-cases the first letter of a sentence unless it starts
// with a name (every constraint sentence but "There is/are ..." does).
func lowerFirst(s string) string {
	if strings.HasPrefix(s, "There ") {
		return "t" + s[1:]
	}
	return s
}

// peopleAt lists, in first-seen order, who stands at position q in the
// given line-ups.
func peopleAt(alive []arrangement, people []string, q int) []string {
	var out []string
	for _, a := range alive {
		name := people[a.line[q-1]]
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// constraintCode is the filter condition of a constraint over a line-up l.
func constraintCode(c Constraint, m int) string {
	pa := fmt.Sprintf("pos(l, %q)", c.A)
	pb := fmt.Sprintf("pos(l, %q)", c.B)
	switch c.Name {
	case "at":
		return fmt.Sprintf("%s == %d", pa, c.N)
	case "not_at":
		return fmt.Sprintf("%s != %d", pa, c.N)
	case "end":
		return fmt.Sprintf("%s in (1, %d)", pa, m)
	case "left_of":
		return pa + " < " + pb
	case "right_of":
		return pa + " > " + pb
	case "next_to":
		return pb + " == " + pa + " + 1"
	case "adjacent":
		return fmt.Sprintf("abs(%s - %s) == 1", pa, pb)
	case "not_adjacent":
		return fmt.Sprintf("abs(%s - %s) != 1", pa, pb)
	case "gap":
		return fmt.Sprintf("abs(%s - %s) == %d", pa, pb, c.N+1)
	}
	return "True"
}
