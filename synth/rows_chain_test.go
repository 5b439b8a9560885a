package synth_test

import (
	"testing"

	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/synth"
)

// TestSynthRowsChainKinds does for the hops and branch families what
// TestSynthRowsAnswerAndPlans does for the first five: eval reads the rows
// as written, the response scores right, the code plan passes the
// extraction filters unchanged, and every mode's training
// text (the control arm's included) splits back into plan and response.
func TestSynthRowsChainKinds(t *testing.T) {
	rows, err := synth.Rows(synth.RowsOptions{Seed: 11, N: 25, Steps: []int{1, 2, 3, 4}, Kinds: synth.ChainKinds})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 25*4*2 {
		t.Fatalf("%d rows", len(rows))
	}
	items, err := benchdata.Load(writeRows(t, rows), benchdata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	filter := planner.NewFilter(planner.FilterConfig{})
	for i, r := range rows {
		it := items[i]
		if it.ID != r.ID || it.Gold != r.Answer || it.Steps != r.K || planner.UserMessage(it.Question, it.Kind) != r.Prompt {
			t.Fatalf("%s: loaded as %+v", r.ID, it)
		}
		if got, ok, _ := evaluate.Score(it, r.Response); !ok {
			t.Fatalf("%s: response scores wrong (extracted %q, gold %q)", r.ID, got, r.Answer)
		}
		// (The control plan is not held to the filters: its masked lines
		// repeat by design, which the repetition filter rejects.)
		out := "Plan:\n```python\n" + r.Plan + "\n```\n"
		got, reason := filter.Check(planner.Candidate{Output: out, Prompt: r.Prompt, Response: r.Response})
		if reason != planner.OK || got != r.Plan {
			t.Fatalf("%s: plan rejected (%s) or changed:\n%s", r.ID, reason, r.Plan)
		}
		for _, c := range []struct {
			mode planner.Mode
			plan string
		}{{planner.Direct, ""}, {planner.NLPlan, r.NLPlan}, {planner.CodePlan, r.Plan}, {planner.CodePlan, r.ControlPlan}} {
			text, err := planner.AssistantText(c.mode, c.plan, r.Response)
			if err != nil {
				t.Fatalf("%s: %s text: %v", r.ID, c.mode, err)
			}
			plan, resp, ok := planner.SplitOutput(c.mode, text)
			if !ok || resp != r.Response || (c.mode.HasPlan() && plan != c.plan) {
				t.Fatalf("%s: %s text does not split back", r.ID, c.mode)
			}
		}
	}
}
