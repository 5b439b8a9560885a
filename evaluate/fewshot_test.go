package evaluate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/planner"
)

func writeExamples(t *testing.T, rows string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shots.jsonl")
	if err := os.WriteFile(p, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const shotRows = `{"question":"What is 2 plus 2?","plan":"def solve():\n    return add(2, 2)","nl_plan":"1. Add 2 and 2.","response":"2 + 2 = 4. The answer is 4."}
{"prompt":"What is 3 times 3?","plan":"def solve():\n    return mul(3, 3)","nl_plan":"1. Multiply 3 by 3.","response":"3 * 3 = 9. The answer is 9."}
{"question":"What is 5 minus 1?","plan":"def solve():\n    return sub(5, 1)","nl_plan":"1. Subtract 1 from 5.","response":"5 - 1 = 4. The answer is 4."}
`

// TestFewShotPrompts checks that few-shot examples precede each question
// as earlier turns in the mode's own format, and that --log-samples keeps
// the rendered prompt in the row.
func TestFewShotPrompts(t *testing.T) {
	examples, err := LoadExamples(writeExamples(t, shotRows), planner.Modes())
	if err != nil {
		t.Fatal(err)
	}
	items := testItems(t, 1)[:2]
	cfg := testConfig(t, items)
	cfg.FewShot, cfg.FewShotN, cfg.LogSamples = examples, 2, true
	gen := newScripted(items)
	if _, err := Run(context.Background(), context.Background(), gen, cfg); err != nil {
		t.Fatal(err)
	}
	for id, prompt := range gen.prompts {
		mode := planner.Mode(id[strings.LastIndex(id, "|")+1:])
		if !strings.Contains(prompt, "What is 2 plus 2?") || !strings.Contains(prompt, "What is 3 times 3?") {
			t.Errorf("%s: the first two examples are missing:\n%s", id, prompt)
		}
		if strings.Contains(prompt, "What is 5 minus 1?") {
			t.Errorf("%s: --fewshot 2 put in a third example", id)
		}
		hasCode := strings.Contains(prompt, "return mul(3, 3)")
		hasNL := strings.Contains(prompt, "1. Multiply 3 by 3.")
		if hasCode != (mode == planner.CodePlan) || hasNL != (mode == planner.NLPlan) {
			t.Errorf("%s: examples not in the mode's format (code plan %v, nl plan %v):\n%s", id, hasCode, hasNL, prompt)
		}
		if !strings.Contains(prompt, "The answer is 9.") {
			t.Errorf("%s: the example's response is missing", id)
		}
		if strings.Index(prompt, "What is 3 times 3?") > strings.Index(prompt, items[0].Question[:20]) &&
			strings.Contains(prompt, items[0].Question[:20]) {
			t.Errorf("%s: an example comes after the question", id)
		}
	}
	rows, err := ReadRows(filepath.Join(cfg.Dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Prompt == "" || r.Prompt != gen.prompts[r.ID] {
			t.Errorf("%s: logged prompt %q differs from the one sent", r.ID, r.Prompt)
		}
	}
}

func TestFewShotSkipsTheItemItself(t *testing.T) {
	examples, err := LoadExamples(writeExamples(t, shotRows), planner.Modes())
	if err != nil {
		t.Fatal(err)
	}
	hint := planner.Hint(answer.Number)
	msgs, err := fewShotHistory(examples, 2, planner.Direct, "What is 2 plus 2?", hint)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 || strings.Contains(msgs[0].Content, "2 plus 2") || msgs[1].Content != "3 * 3 = 9. The answer is 9." {
		t.Errorf("history %+v", msgs)
	}
	// Every example's user turn ends with the same answer-format line as
	// the item's own question (UserMessage), exactly once.
	for _, m := range []planner.Message{msgs[0], msgs[2]} {
		if !strings.HasSuffix(m.Content, "\n\n"+hint) || strings.Count(m.Content, hint) != 1 {
			t.Errorf("example turn %q lacks the answer-format line %q", m.Content, hint)
		}
	}
	_, err = fewShotHistory(examples, 3, planner.Direct, "What is 2 plus 2?", hint)
	if err == nil || !strings.Contains(err.Error(), "--fewshot-file") {
		t.Errorf("3 examples asked, 2 usable: error %v, want one pointing to --fewshot-file", err)
	}
}

func TestLoadExamplesErrors(t *testing.T) {
	cases := map[string]string{
		"no nl_plan":  `{"question":"q","plan":"def f(): pass","response":"r"}`,
		"no response": `{"question":"q","plan":"p","nl_plan":"n"}`,
		"not json":    `{"question":`,
		"empty":       "\n",
	}
	for name, rows := range cases {
		if _, err := LoadExamples(writeExamples(t, rows+"\n"), planner.Modes()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadExamples(writeExamples(t, cases["no nl_plan"]+"\n"), []planner.Mode{planner.Direct, planner.CodePlan}); err != nil {
		t.Errorf("an example without nl_plan should do for direct and codeplan: %v", err)
	}
}

// TestSynthExamples checks that a synthetic benchmark's own few-shot
// examples come with both plans and a marked response, and are not the
// benchmark's items.
func TestSynthExamples(t *testing.T) {
	src := Source{Bench: "synth-arith", Steps: []int{1, 2}, PerCell: 3}
	examples, err := SynthExamples(src, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) != 2 {
		t.Fatalf("%d examples, want one per step count", len(examples))
	}
	// The pool grows with what is asked: 5 examples (+1 in case one is
	// the item) from a benchmark of 2 cells, alternating the cells.
	more, err := SynthExamples(Source{Bench: "synth-arith", Steps: []int{1, 2}, PerCell: 3}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(more) < 6 || more[0].Question != examples[0].Question || more[1].Question != examples[1].Question {
		t.Fatalf("%d examples (want >= 6, starting with the 2 of the smaller pool)", len(more))
	}
	seen := map[string]bool{}
	for _, ex := range more {
		if seen[ex.Question] {
			t.Errorf("example %q twice", ex.Question)
		}
		seen[ex.Question] = true
	}
	// Even on a single cell, --fewshot 2 can be served.
	one, err := SynthExamples(Source{Bench: "synth-arith", Steps: []int{3}, PerCell: 1}, 2)
	if err != nil || len(one) < 3 {
		t.Fatalf("one cell, 2 asked: %d examples, %v", len(one), err)
	}
	loaded, err := LoadItems(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		if !strings.Contains(ex.Plan, "def ") || ex.NLPlan == "" || !strings.Contains(ex.Response, "The answer is") {
			t.Errorf("example %+v", ex)
		}
		if ex.Hint != planner.Hint(answer.Number) {
			t.Errorf("example hint %q", ex.Hint)
		}
		for _, it := range loaded.Items {
			if strings.TrimSpace(it.Question) == strings.TrimSpace(ex.Question) {
				t.Errorf("example %q is an item of the benchmark", ex.Question)
			}
		}
	}
}
