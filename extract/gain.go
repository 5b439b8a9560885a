package extract

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// ReasonLowGain rejects rows whose plan's information gain is below
// --min-gain (or could not be scored while a minimum was asked for).
const ReasonLowGain planner.Reason = "low_gain"

// Gain is how much a plan helps a model predict the response: the mean
// log-likelihood per response token given the prompt with the plan, and
// given the prompt alone. This goes beyond the paper, which tried the idea as
// a filter and dropped it; extract computes it on request so that dataset
// builders can study it beside the other filters.
type Gain struct {
	WithPlan    float64 `json:"loglik_with_plan"`    // mean nats per response token, prompt + plan
	WithoutPlan float64 `json:"loglik_without_plan"` // mean nats per response token, prompt only
	Nats        float64 `json:"gain_nats"`           // WithPlan - WithoutPlan
	Tokens      int     `json:"gain_tokens"`         // response tokens scored
}

// GainScorer scores a plan's gain. Implementations must be safe for
// concurrent use (the pipeline's workers share it).
type GainScorer interface {
	Gain(prompt, plan, response string) (Gain, error)
}

// ErrGainUnscored wraps reasons a row's gain cannot be computed that a retry
// would not fix (the texts do not fit the scoring window, the plan holds the
// format's delimiter); the row keeps its verdict without a gain.
var ErrGainUnscored = errors.New("gain not scored")

// LocalGain scores with a local model by prompt processing only.
//
// The response is scored in the trained format that finetune teaches, in the
// scoring model's chat template: with the plan, the assistant turn is
// "Plan:\n```python\n<plan>\n```\nResponse:\n" before the response (codeplan
// mode); without, the response follows the assistant header directly (direct
// mode). So the gain is log P(response | prompt, plan) - log P(response |
// prompt) as a model fine-tuned on the data would see it. On an untrained
// instruct model part of the difference is the unfamiliar layout; compare
// gains between rows, not against zero.
type LocalGain struct {
	Text PairScorer
	Chat planner.ChatTemplater
}

// PairScorer builds and scores log-likelihood requests for a continuation
// after a context (llama/loglik's Text, which local opens, implements it).
// Score must be safe for concurrent use.
type PairScorer interface {
	Pair(context, continuation string) (lm.ScoreRequest, error)
	Score(reqs []lm.ScoreRequest) ([]lm.Scores, error)
}

// Gain implements GainScorer.
func (g LocalGain) Gain(prompt, plan, response string) (Gain, error) {
	with, err := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: g.Chat}.AnswerPrompt(nil, prompt, plan)
	if err != nil {
		return Gain{}, fmt.Errorf("%w: %v", ErrGainUnscored, err)
	}
	without, err := planner.Prompter{Mode: planner.Direct, Format: planner.Trained, Chat: g.Chat}.AnswerPrompt(nil, prompt, "")
	if err != nil {
		return Gain{}, err
	}
	target := strings.TrimSpace(response) // as AssistantText lays it out for training
	var reqs [2]lm.ScoreRequest
	for i, ctx := range []string{with.Text, without.Text} {
		if reqs[i], err = g.Text.Pair(ctx, target); err != nil {
			if errors.Is(err, lm.ErrTooLong) || strings.TrimSpace(target) == "" {
				return Gain{}, fmt.Errorf("%w: %v", ErrGainUnscored, err)
			}
			return Gain{}, err
		}
	}
	res, err := g.Text.Score(reqs[:])
	if err != nil {
		return Gain{}, err
	}
	out := Gain{WithPlan: res[0].Mean(), WithoutPlan: res[1].Mean(), Tokens: len(res[0].LogProbs)}
	out.Nats = out.WithPlan - out.WithoutPlan
	return out, nil
}

// GainStats summarises the gains of a run.
type GainStats struct {
	Rows   int     `json:"rows"`
	Mean   float64 `json:"mean"`
	Q1     float64 `json:"q1"`
	Median float64 `json:"median"`
	Q3     float64 `json:"q3"`
}

// NewGainStats computes the mean and quartiles (linear interpolation
// between order statistics) of v; v is sorted in place.
func NewGainStats(v []float64) GainStats {
	if len(v) == 0 {
		return GainStats{}
	}
	sort.Float64s(v)
	s := GainStats{Rows: len(v)}
	for _, x := range v {
		s.Mean += x
	}
	s.Mean /= float64(len(v))
	q := func(p float64) float64 {
		pos := p * float64(len(v)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(v)-1)
		return v[lo] + (pos-float64(lo))*(v[hi]-v[lo])
	}
	s.Q1, s.Median, s.Q3 = q(0.25), q(0.5), q(0.75)
	return s
}
