// Package evaltest holds the scripted stand-in for a model that the eval
// job's tests and the report's tests share, so that both check numbers
// made by the same answers.
package evaltest

import (
	"strings"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Answer is the scripted model's result for req, whose ID is "item|mode":
// always right in direct mode, never in nlplan mode, and right in codeplan
// mode except for truth puzzles; a two-phase request gets a fixed plan
// first. gold maps item ids to their answers.
func Answer(gold map[string]string, req lm.Request) lm.Result {
	i := strings.LastIndex(req.ID, "|")
	item, mode := req.ID[:i], planner.Mode(req.ID[i+1:])
	var text string
	switch {
	case mode == planner.Direct:
		text = "The answer is " + gold[item]
	case mode == planner.NLPlan || strings.Contains(item, "truth"):
		text = "I am not sure."
	default:
		text = "Following the plan.\nThe answer is " + gold[item] + "."
	}
	res := lm.Result{ID: req.ID, PromptTokens: 20}
	if len(req.Phases) == 2 {
		res.Phases = append(res.Phases, lm.PhaseOutput{Text: "def solve():\n    return step()\n", Tokens: 7, Finish: lm.FinishStop})
	}
	res.Phases = append(res.Phases, lm.PhaseOutput{Text: text, Tokens: 5, Finish: lm.FinishStop})
	return res
}
