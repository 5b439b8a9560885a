package evaluate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Multiple-choice scoring methods (eval --mc-scoring).
const (
	// ScoringGenerate lets the model write its answer and extracts the
	// option letter from it (the default).
	ScoringGenerate = "generate"
	// ScoringLoglik picks the option whose text the model finds most likely
	// after the question, as lm-evaluation-harness does: acc by summed
	// log-likelihood, acc_norm by log-likelihood per byte of the option.
	ScoringLoglik = "loglik"
)

// ChoiceScorer returns the log-likelihood of each continuation after one
// context, by prompt processing only; llama/loglik's *Text implements it. It must be
// safe for concurrent use.
type ChoiceScorer interface {
	Choices(context string, continuations []string) ([]lm.Scores, error)
}

// ChoiceHint replaces Hint for items scored by log-likelihood: the scored
// continuation is the option's text itself, so the model is asked for that.
const ChoiceHint = "Answer with the text of the correct option only."

// ChoiceMessage is the user turn of a multiple-choice item scored by
// log-likelihood: its question (options included) and ChoiceHint.
func ChoiceMessage(it benchdata.Item) string {
	return strings.TrimSpace(it.Question) + "\n\n" + ChoiceHint
}

// ChoiceScores are the log-likelihoods behind a row scored with ScoringLoglik.
type ChoiceScores struct {
	// LogLiks[i] is the summed log-likelihood (nats) of option i's text.
	LogLiks []float64 `json:"loglik"`
	// Norm is the letter picked by log-likelihood per byte of the option
	// text (lm-evaluation-harness's acc_norm); the row's Extracted is the
	// letter picked by LogLiks (acc).
	Norm        string `json:"norm_pick"`
	CorrectNorm bool   `json:"correct_norm"`
}

// scoresChoices reports whether an item of this run is scored by
// log-likelihood instead of generation.
func (cfg *Config) scoresChoices(it benchdata.Item) bool {
	return cfg.Choices != nil && it.Kind == answer.Choice && len(it.Choices) > 1
}

// answerByLoglik scores a multiple-choice item by the log-likelihood of its
// options. In a plan mode the model first writes its plan (one generation
// phase, as in generation scoring); the options are then scored after the
// plan in the trained layout, where the answer would begin.
func (cfg *Config) answerByLoglik(ctx context.Context, gen lm.Generator, t task, row Row) pipeline.Outcome {
	it := t.item
	row.Scoring = ScoringLoglik
	p := cfg.Prompter
	p.Mode = t.mode
	user := ChoiceMessage(it)
	var history []planner.Message
	if cfg.FewShotN > 0 {
		// The worked examples are earlier turns, as in generation scoring.
		h, err := fewShotHistory(cfg.FewShot, cfg.FewShotN, t.mode, it.Question, planner.Hint(it.Kind))
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		history = h
	}
	start := time.Now()
	plan, tokens, prompt := "", 0, 0
	if t.mode.HasPlan() {
		ph, err := p.PlanPrompt(history, user)
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		maxPlan := cfg.Settings.MaxPlanTokens
		if maxPlan <= 0 {
			maxPlan = planner.DefaultMaxPlanTokens
		}
		res, err := gen.Generate(ctx, lm.Request{ID: row.ID, Sampling: cfg.Settings.Sampling,
			Phases: []lm.Phase{{Prefix: ph.Text, MaxTokens: maxPlan, Stop: ph.Stop}}})
		if lm.Permanent(err) {
			row.Error, row.Finish, row.SeqContext = err.Error(), string(lm.FinishError), cfg.SeqContext
			return pipeline.Outcome{Output: row}
		}
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		if len(res.Phases) > 0 {
			plan, tokens = res.Phases[0].Text, res.Phases[0].Tokens
			row.PlanFinish = string(res.Phases[0].Finish)
			if res.Phases[0].ContextFull {
				// The options are then scored after the plan so far; they
				// rarely fit the rest of the sequence (lm.ErrTooLong below).
				row.PlanFinish = inference.FinishContextFull
			}
		}
		prompt = res.PromptTokens
		row.Plan, row.PlanTokens, row.PromptTokens = planner.CleanPlan(plan), tokens, prompt
	}
	ap, err := p.AnswerPrompt(history, user, plan)
	if err == nil {
		var res []lm.Scores
		if cfg.LogSamples {
			row.Prompt = ap.Text
		}
		if res, err = cfg.Choices.Choices(ap.Text, it.Choices); err == nil {
			row.Seconds = time.Since(start).Seconds()
			row.Finish = string(lm.FinishStop)
			cfg.pickChoice(it, res, &row)
			return pipeline.Outcome{Output: row, Tokens: tokens, PromptTokens: prompt}
		}
	}
	if errors.Is(err, lm.ErrTooLong) || t.mode.HasPlan() {
		// Permanent (the texts do not fit, or this plan cannot be laid out):
		// the row is written as wrong rather than retried on every run; the
		// texts may fit a larger context (the scorer's window is a
		// sequence's).
		row.Error, row.Finish = fmt.Sprintf("loglik scoring: %v", err), string(lm.FinishError)
		if errors.Is(err, lm.ErrTooLong) {
			row.SeqContext = cfg.SeqContext
		}
		return pipeline.Outcome{Output: row}
	}
	return pipeline.Outcome{Err: err}
}

// pickChoice fills the row from the options' scores: acc's pick (summed
// log-likelihood) as Extracted and Correct, acc_norm's (per byte) in Choice.
func (cfg *Config) pickChoice(it benchdata.Item, res []lm.Scores, row *Row) {
	sc := ChoiceScores{LogLiks: make([]float64, len(res))}
	best, bestNorm := 0, 0
	norm := func(i int) float64 { return res[i].Sum() / float64(max(1, len(it.Choices[i]))) }
	for i := range res {
		sc.LogLiks[i] = res[i].Sum()
		if res[i].Sum() > res[best].Sum() {
			best = i
		}
		if norm(i) > norm(bestNorm) {
			bestNorm = i
		}
	}
	letter := func(i int) string { return string(rune('A' + i)) }
	row.Extracted, row.Output = letter(best), it.Choices[best]
	v := answer.ScoreAny(it.Kind, row.Extracted, it.Golds())
	row.Correct, row.F1 = v.Correct, v.F1
	row.StrictCorrect = v.Correct // a pick among the options is never ambiguous
	sc.Norm = letter(bestNorm)
	sc.CorrectNorm = answer.ScoreAny(it.Kind, sc.Norm, it.Golds()).Correct
	row.ChoiceScores = &sc
}
