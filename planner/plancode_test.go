package planner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindCode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means ok must be false
	}{
		{"python fence with prose around",
			"Here is the plan:\n\n```python\ndef solve(q):\n    x = parse(q)\n    return answer(x)\n```\n\nThis captures the steps.",
			"def solve(q):\n    x = parse(q)\n    return answer(x)"},
		{"py tag", "```py\nx = f()\nreturn g(x)\n```", "x = f()\nreturn g(x)"},
		{"bare fence", "```\nx = f()\nreturn g(x)\n```", "x = f()\nreturn g(x)"},
		{"tilde fence", "~~~\nfor s in steps:\n    run(s)\n~~~\nDone.", "for s in steps:\n    run(s)"},
		{"long tilde fence keeps shorter fence inside",
			"~~~~python\nx = f()\n~~~\ny = g()\n~~~~", "x = f()\n~~~\ny = g()"},
		{"uppercase tag and extra info", "```Python title=plan.py\nplan = make()\n```", "plan = make()"},
		{"longest python block wins",
			"```python\nsolve()\n```\nwhere\n```python\ndef solve():\n    a = first()\n    return second(a)\n```",
			"def solve():\n    a = first()\n    return second(a)"},
		{"python beats longer json",
			"```json\n{\"a\": 1,\n \"b\": 2,\n \"c\": 3}\n```\n```python\nx = load()\n```", "x = load()"},
		{"python beats bare",
			"```\ny = other()\nz = more()\n```\n```python\nx = load()\n```", "x = load()"},
		{"bare prose block skipped for code block",
			"```\nThe plan is to think hard.\n```\n```text\nfor x in xs:\n    check(x)\n```", "for x in xs:\n    check(x)"},
		{"python tag trusted even for pseudocode words",
			"```python\nfunction solve(problem):\n    identify knowns\n```", "function solve(problem):\n    identify knowns"},
		{"unterminated fence runs to the end",
			"```python\ndef f():\n    x = g(\n", "def f():\n    x = g("},
		{"empty python fence falls back to unfenced code",
			"```python\n```\nx = f()\nreturn x", "x = f()\nreturn x"},
		{"one-line fence", "```python solve(question)```", "solve(question)"},
		{"indented fence in a list",
			"1. The plan:\n   ```python\n   def plan():\n       step_one()\n   ```", "def plan():\n    step_one()"},
		{"unfenced with prose around",
			"Sure! Here is a code-form plan.\n\ndef solve(question):\n    facts = extract_facts(question)\n    if facts.missing:\n        ask_for(facts.missing)\n    return conclude(facts)\n\nI hope this helps.",
			"def solve(question):\n    facts = extract_facts(question)\n    if facts.missing:\n        ask_for(facts.missing)\n    return conclude(facts)"},
		{"unfenced indented prose body",
			"def plan():\n    identify the given values\n    apply the formula\nThat is all.",
			"def plan():\n    identify the given values\n    apply the formula"},
		{"unfenced longest run wins",
			"x = 1\nSome words here.\nfor i in items:\n    handle(i)\nreturn total", "for i in items:\n    handle(i)\nreturn total"},
		{"single code line as whole output", "  solve(question)  \n", "solve(question)"},
		{"single code line inside prose", "The answer is:\nx = 5\nThat is it.", ""},
		{"prose only", "I cannot produce a plan for this question because it is unclear.", ""},
		{"prose with keyword-like words", "for example, we return to the start.\nif we can, we should.", ""},
		{"empty", "", ""},
		{"whitespace", " \n\t\n", ""},
		{"bash block is not code", "```bash\npip install numpy\n```", ""},
		{"tabs to spaces and trailing spaces",
			"```python\ndef f():\t\n\tif x:  \n\t\treturn y\n```", "def f():\n    if x:\n        return y"},
		{"blank line runs collapsed",
			"```python\n\n\nx = a()\n\n\n\ny = b()\n\n```", "x = a()\n\ny = b()"},
		{"common indentation removed",
			"```python\n    x = a()\n        y = b()\n    z = c()\n```", "x = a()\n    y = b()\nz = c()"},
		{"CRLF", "```python\r\nx = a()\r\ny = b()\r\n```\r\n", "x = a()\ny = b()"},
		{"bare CR", "```python\rx = a()\ry = b()\r```", "x = a()\ny = b()"},
		{"decorator comment and docstring",
			"@cache\ndef f(n):\n    \"\"\"Count ways.\"\"\"\n    # base case\n    return g(n)", "@cache\ndef f(n):\n    \"\"\"Count ways.\"\"\"\n    # base case\n    return g(n)"},
		{"multi-line call closes with bracket line",
			"result = combine(\n    first(),\n    second(),\n)\nreturn result", "result = combine(\n    first(),\n    second(),\n)\nreturn result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FindCode(tc.in)
			if tc.want == "" {
				if ok {
					t.Errorf("FindCode = %q, true; want no code", got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Errorf("FindCode =\n%q, %v\nwant\n%q", got, ok, tc.want)
			}
		})
	}
}

// TestFindCodeSample runs FindCode over a realistic extraction-model
// output kept in testdata.
func TestFindCodeSample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "extraction_output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := FindCode(string(b))
	if !ok {
		t.Fatal("no code found")
	}
	if !strings.HasPrefix(got, "def find_time_to_meet(") || strings.Contains(got, "```") || strings.Contains(got, "Explanation") {
		t.Errorf("unexpected extraction:\n%s", got)
	}
	if _, reason := (&Filter{}).Check(Candidate{Output: string(b)}); reason != OK {
		t.Errorf("sample plan rejected: %s", reason)
	}
}

func TestIsCodeLine(t *testing.T) {
	code := []string{"def f(x):", "    return x", "else:", "x = 1", "a, b = f()", "d['k'] += 2", "total: int = 0",
		"from math import sqrt", "import os", "pass", "print(x)", "obj.method(a, b)", "# comment", "for x in xs:  # loop",
		"while not done:", "raise ValueError(msg)", "yield item", "elif x > 2:"}
	prose := []string{"", "The answer is 5.", "for example, consider this", "Return the result.", "if possible",
		"x == y is a comparison", "Note (see above)", "returns are high", "passage of time", "- step one"}
	for _, l := range code {
		if !isCodeLine(l) {
			t.Errorf("isCodeLine(%q) = false, want true", l)
		}
	}
	for _, l := range prose {
		if isCodeLine(l) {
			t.Errorf("isCodeLine(%q) = true, want false", l)
		}
	}
}

// TestFindCodePaperAnswerShapes covers what an instruct model answers to the
// paper's extraction prompt, which asks for "a pseudo Python code" but not
// for a code fence: a fenced block, bare code, and code with a sentence
// before it, after it, or both.
func TestFindCodePaperAnswerShapes(t *testing.T) {
	const code = "def count_digits(pages):\n" +
		"    # pages 1-9 use one digit, 10-99 two, 100 and up three\n" +
		"    total = 0\n" +
		"    for page in range(1, pages + 1):\n" +
		"        total += len(str(page))\n" +
		"    return total\n" +
		"\n" +
		"print(count_digits(240))"
	tests := []struct{ name, in string }{
		{"fenced python", "```python\n" + code + "\n```"},
		{"fenced untagged with sentences around",
			"Here is the pseudo Python code describing the high-level logic of the response:\n\n```\n" + code +
				"\n```\n\nFollowing this code, a model can reproduce the response step by step."},
		{"bare code", code},
		{"bare code with trailing newlines", "\n" + code + "\n\n"},
		{"sentence before", "Here is the high-level logic of the response in pseudo Python code:\n\n" + code},
		{"sentence before, no blank line", "Pseudo Python code:\n" + code},
		{"sentence after", code + "\n\nThis code counts the digits page by page and prints the total, as the response does."},
		{"sentence after, no blank line", code + "\nThe code follows the response's reasoning."},
		{"sentences before and after",
			"Sure! Below is the pseudo code.\n\n" + code + "\n\nNote that the code is high-level and leaves the arithmetic to the model."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FindCode(tc.in)
			if !ok || got != code {
				t.Errorf("FindCode =\n%s\n(ok %v), want\n%s", got, ok, code)
			}
			plan, reason := NewFilter(FilterConfig{}).Check(Candidate{Output: tc.in, Prompt: "How many digits are needed to number 240 pages?",
				Response: "Pages 1-9 need 9 digits, 10-99 need 180, 100-240 need 423: 612 digits."})
			if reason != OK || plan != code {
				t.Errorf("Filter.Check = %q, %s; want the code, ok", plan, reason)
			}
		})
	}
}
