// Package inference runs the CodePlan answer modes on the batching engine:
// it turns a conversation into a multi-phase lm.Request (plan, then
// answer, on one sequence) and the engine's Result back into a plan and an
// answer. chat, generate, serve and eval all answer through it, so every
// command uses the same prompts as finetune teaches.
package inference

import (
	"context"
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/sampling"
	"github.com/codeplan-dev/codeplan/planner"
)

// Settings are the generation limits and sampling of a Runner.
type Settings struct {
	MaxPlanTokens int              // limit of the plan phase (default 256)
	MaxTokens     int              // limit of the answer phase (default 512)
	Sampling      sampling.Options // zero value: greedy
}

func (s Settings) withDefaults() Settings {
	if s.MaxPlanTokens <= 0 {
		s.MaxPlanTokens = planner.DefaultMaxPlanTokens
	}
	if s.MaxTokens <= 0 {
		s.MaxTokens = planner.DefaultMaxTokens
	}
	return s
}

// Answer is a finished plan-then-answer generation.
type Answer struct {
	Mode         planner.Mode `json:"mode"`
	Plan         string       `json:"plan,omitempty"`
	Answer       string       `json:"answer"`
	PlanFinish   string       `json:"plan_finish,omitempty"` // "stop" or "length" (plan did not terminate)
	Finish       string       `json:"finish"`
	PromptTokens int          `json:"prompt_tokens"`
	PlanTokens   int          `json:"plan_tokens"`
	AnswerTokens int          `json:"answer_tokens"`
}

// Stream receives generated text as it appears; phase is "plan" or "answer".
type Stream func(phase, text string)

// Request builds the engine request for one user turn after history.
func Request(p planner.Prompter, s Settings, history []planner.Message, user string, stream Stream) (lm.Request, error) {
	s = s.withDefaults()
	req := lm.Request{Sampling: s.Sampling}
	if p.Mode.HasPlan() {
		plan, err := p.PlanPrompt(history, user)
		if err != nil {
			return req, err
		}
		req.Phases = []lm.Phase{
			{Prefix: plan.Text, MaxTokens: s.MaxPlanTokens, Stop: plan.Stop},
			// Appended after the generated plan, this closes the plan and opens
			// the answer exactly as planner.AnswerPrompt lays them out.
			{Prefix: p.Mode.AnswerOpener(), MaxTokens: s.MaxTokens},
		}
	} else {
		ans, err := p.AnswerPrompt(history, user, "")
		if err != nil {
			return req, err
		}
		req.Phases = []lm.Phase{{Prefix: ans.Text, MaxTokens: s.MaxTokens, Stop: ans.Stop}}
	}
	if stream != nil {
		hasPlan := p.Mode.HasPlan()
		req.OnText = func(phase int, text string) {
			if hasPlan && phase == 0 {
				stream("plan", text)
			} else {
				stream("answer", text)
			}
		}
	}
	return req, nil
}

// FromResult reads the plan and the answer out of an engine result.
func FromResult(mode planner.Mode, r lm.Result) Answer {
	a := Answer{Mode: mode, PromptTokens: r.PromptTokens}
	ph := r.Phases
	if mode.HasPlan() && len(ph) > 0 {
		a.Plan = planner.CleanPlan(ph[0].Text)
		a.PlanFinish = string(ph[0].Finish)
		a.PlanTokens = ph[0].Tokens
		ph = ph[1:]
	}
	if len(ph) > 0 {
		a.Answer = strings.TrimSpace(ph[0].Text)
		a.Finish = string(ph[0].Finish)
		a.AnswerTokens = ph[0].Tokens
	} else if r.Err != nil {
		a.Finish = string(lm.FinishError)
	}
	return a
}

// Runner answers user turns with one Prompter on an engine.
type Runner struct {
	Engine   lm.Generator
	Prompter planner.Prompter
	Settings Settings
}

// Answer generates a plan (unless the mode is direct) and an answer.
func (r *Runner) Answer(ctx context.Context, history []planner.Message, user string, stream Stream) (Answer, error) {
	req, err := Request(r.Prompter, r.Settings, history, user, stream)
	if err != nil {
		return Answer{}, err
	}
	req.Ctx = ctx
	res, err := r.Engine.Generate(ctx, req)
	a := FromResult(r.Prompter.Mode, res)
	if err != nil {
		return a, fmt.Errorf("generate: %w", err)
	}
	return a, nil
}
