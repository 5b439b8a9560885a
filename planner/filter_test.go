package planner

import (
	"regexp"
	"strings"
	"testing"
)

// goodPlan is a plan every default check accepts.
const goodPlan = "```python\n" +
	"def solve(question):\n" +
	"    values = identify_given_values(question)\n" +
	"    # the user's units may differ\n" +
	"    if units_differ(values):\n" +
	"        values = convert_units(values)\n" +
	"    result = apply_formula(values)\n" +
	"    return explain(result)\n" +
	"```"

const (
	samplePrompt   = "A train travels 120 km in 2 hours. What is its average speed?"
	sampleResponse = "To find the average speed we divide the total distance by the total time taken. " +
		"The train covers 120 km in 2 hours, so the average speed is 120 / 2 = 60 km/h."
)

func TestFilterReasons(t *testing.T) {
	longPlan := "```python\n" + strings.Repeat("step_a(x)\nstep_b(y)\nstep_c(z)\nvalue = combine(a, b, c)\n", 1) + "```"
	copyPlan := "```python\n" +
		"# To find the average speed we divide the total distance by the total time taken.\n" +
		"speed = divide(distance, time)\n" +
		"# The train covers 120 km in 2 hours, so the average speed is 120 / 2 = 60 km/h.\n" +
		"```"
	tests := []struct {
		name string
		cfg  FilterConfig
		in   Candidate
		want Reason
	}{
		{"ok", FilterConfig{}, Candidate{Output: goodPlan, Prompt: samplePrompt, Response: sampleResponse}, OK},

		{"not terminated", FilterConfig{}, Candidate{Output: goodPlan, HitTokenLimit: true}, NotTerminated},
		{"not terminated kept on request", FilterConfig{KeepUnterminated: true}, Candidate{Output: goodPlan, HitTokenLimit: true}, OK},

		{"empty", FilterConfig{}, Candidate{Output: " \n\t "}, Empty},
		{"no code", FilterConfig{}, Candidate{Output: "I am sorry, but I cannot write a plan for this."}, NoCode},
		{"prose in bare fence is no code", FilterConfig{}, Candidate{Output: "```\nFirst think, then answer.\n```"}, NoCode},

		{"unclosed paren", FilterConfig{}, Candidate{Output: "```python\ndef f(x):\n    y = g(x\n    return y\n```"}, Unbalanced},
		{"mismatched bracket", FilterConfig{}, Candidate{Output: "```python\nx = f([a, b)]\nreturn x\n```"}, Unbalanced},
		{"stray closer", FilterConfig{}, Candidate{Output: "```python\nx = f(a))\nreturn x\n```"}, Unbalanced},
		{"unterminated string", FilterConfig{}, Candidate{Output: "```python\nmsg = \"total is\nreturn msg\n```"}, Unbalanced},
		{"unterminated docstring", FilterConfig{}, Candidate{Output: "```python\ndef f(a):\n    \"\"\"Compute the thing\n    return g(a)\n```"}, Unbalanced},
		{"truncated mid-call", FilterConfig{}, Candidate{Output: "```python\ndef solve(q):\n    facts = gather(q)\n    return combine(facts,"}, Unbalanced},
		{"balanced with apostrophes, brackets in strings and comments", FilterConfig{},
			Candidate{Output: "```python\ndef check(answer):\n    # don't trust the user's input (yet\n" +
				"    if answer == \"(\" or answer == '[':\n        return f'{answer} isn\\'t valid'\n" +
				"    note = \"\"\"multi\n    line ( doc\"\"\"\n    validate the users' names(answer)\n    return ok(answer)\n```"}, OK},

		{"repeated line", FilterConfig{}, Candidate{Output: "```python\n" + strings.Repeat("result = process(item)\n", 6) + "```"}, DegenerateRepetition},
		{"repeated n-grams on one line", FilterConfig{}, Candidate{Output: "```python\nx = " + strings.Repeat("add(a, b) + ", 20) + "c\n```"}, DegenerateRepetition},
		{"if/elif chain is not degenerate", FilterConfig{}, Candidate{Output: "```python\n" +
			"if op == 'add':\n    result = add(a, b)\nelif op == 'sub':\n    result = subtract(a, b)\n" +
			"elif op == 'mul':\n    result = multiply(a, b)\nelif op == 'div':\n    result = divide(a, b)\n" +
			"else:\n    result = report_error(op)\nreturn result\n```"}, OK},
		{"repetition check off", FilterConfig{MaxLineRepeats: -1, MinUniqueNgrams: -1},
			Candidate{Output: "```python\n" + strings.Repeat("result = process(item)\n", 6) + "```"}, OK},

		{"too long", FilterConfig{MaxWords: 10}, Candidate{Output: longPlan}, TooLong},
		{"long enough under default", FilterConfig{}, Candidate{Output: longPlan}, OK},
		{"too short", FilterConfig{}, Candidate{Output: "```python\nsolve(q)\n```"}, TooShort},
		{"short allowed when off", FilterConfig{MinWords: -1}, Candidate{Output: "```python\nsolve(q)\n```"}, OK},

		{"copies response", FilterConfig{}, Candidate{Output: copyPlan, Prompt: samplePrompt, Response: sampleResponse}, CopiesResponse},
		{"copy check off", FilterConfig{MaxCopyShare: -1}, Candidate{Output: copyPlan, Prompt: samplePrompt, Response: sampleResponse}, OK},
		{"text shared with the prompt is not copying", FilterConfig{},
			Candidate{Output: "```python\n# A train travels 120 km in 2 hours. What is its average speed?\nspeed = divide(distance, time)\n```",
				Prompt: samplePrompt, Response: samplePrompt + " " + sampleResponse}, OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, got := NewFilter(tc.cfg).Check(tc.in)
			if got != tc.want {
				t.Errorf("Check = %s (plan %q), want %s", got, plan, tc.want)
			}
			if got == OK && plan == "" {
				t.Error("OK with an empty plan")
			}
		})
	}
}

func TestFilterReturnsPlan(t *testing.T) {
	f := NewFilter(FilterConfig{})
	plan, reason := f.Check(Candidate{Output: goodPlan})
	want, _ := FindCode(goodPlan)
	if reason != OK || plan != want {
		t.Errorf("Check = %q, %s; want the extracted plan and ok", plan, reason)
	}
	// Rejected candidates still return what was extracted, for inspection.
	if plan, reason := f.Check(Candidate{Output: goodPlan, HitTokenLimit: true}); plan != want || reason != NotTerminated {
		t.Errorf("not terminated: Check = %q, %s", plan, reason)
	}
	var zero Filter
	if _, reason := zero.Check(Candidate{Output: "```python\nsolve(q)\n```"}); reason != TooShort {
		t.Errorf("zero Filter does not use defaults: %s", reason)
	}
}

func TestFilterConfigDefaults(t *testing.T) {
	c := NewFilter(FilterConfig{MinWords: -1, MaxWords: 50}).Config()
	if c.MaxWords != 50 || c.MinWords != -1 || c.MaxLineRepeats != 4 || c.RepeatNgram != 5 ||
		c.MinUniqueNgrams != 0.5 || c.CopyNgram != 8 || c.MaxCopyShare != 0.5 {
		t.Errorf("effective config = %+v", c)
	}
	if d := NewFilter(FilterConfig{}).Config(); d.MaxWords != 200 || d.MinWords != 5 {
		t.Errorf("defaults = %+v", d)
	}
}

func TestReasons(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		if !snake.MatchString(string(r)) {
			t.Errorf("%q is not snake_case", r)
		}
		if d := r.Description(); d == "" || strings.Contains(d, "\n") {
			t.Errorf("%s: description %q is not one line", r, d)
		}
	}
	for _, r := range []Reason{NotTerminated, Empty, NoCode, TooLong, TooShort, DegenerateRepetition, CopiesResponse, Unbalanced} {
		if !seen[r] {
			t.Errorf("%s missing from Reasons()", r)
		}
	}
	if Reason("bogus").Description() != "" {
		t.Error("unknown reason has a description")
	}
}

func TestWordCount(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"  \n ", 0},
		{"hello world", 2},
		{"total = compute_total(prices)", 3},
		{"x+=1 # add one", 4},
		{"naïve café", 2},
		{"计算总和 sum", 5},
		{"don't", 2},
	}
	for _, tc := range tests {
		if got := WordCount(tc.in); got != tc.want {
			t.Errorf("WordCount(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
