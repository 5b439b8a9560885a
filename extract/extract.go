// Package extract is the data half of CodePlan: it turns a corpus of
// (prompt, response) rows into (prompt, plan, response) rows by asking an
// instruct model for the plan each response follows, filters the plans, and
// writes accepted and rejected rows to crash-safe, resumable JSONL files.
//
// The model sits behind Generator, so the same pipeline runs on the local
// continuous-batching engine or on an OpenAI-compatible serving fleet.
package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Generation is a model's reply to one extraction prompt.
type Generation struct {
	Text     string
	HitLimit bool // stopped at the token limit: the plan did not terminate
	// ContextFull is set with HitLimit when the row's share of the context
	// filled before the plan limit (local engine only); FitContext is then
	// the context size (--ctx) at which it would have reached the limit.
	ContextFull  bool
	FitContext   int
	PromptTokens int
	Tokens       int
}

// Generator produces text for a chat conversation. Implementations must be
// safe for concurrent use: the pipeline calls Generate from many workers so
// that a batching backend always has work.
type Generator interface {
	Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error)
}

// Config describes one extraction run.
type Config struct {
	Input   string // input path ("-" = stdin)
	Read    dataset.ReadOptions
	Output  string // accepted rows (JSONL)
	Rejects string // rejected rows with their reason ("" = not kept)
	Shard   dataset.ShardSpec
	Limit   int64 // stop after this many new rows (0 = all)

	Template      *planner.Template
	Filter        *planner.Filter
	MaxPlanTokens int
	Workers       int // concurrent Generate calls

	// Gain, when set, scores every row that has a plan (accepted or
	// rejected) with its information gain; MinGain, when set too, rejects
	// accepted rows below it as low_gain.
	Gain    GainScorer
	MinGain *float64

	// ReferenceField, when set, is the gjson path of a reference plan in
	// each input row (e.g. "plan" in rows that `codeplan synth` wrote, or a
	// teacher model's extracted plan). Every accepted row then records
	// whether its plan equals the reference (after planner.CleanPlan), and
	// the summary counts the matches: how far an extractor reproduces the
	// plans it should. It does not change what is accepted.
	ReferenceField string

	// Provenance copied into every output row.
	Model    string
	Sampling map[string]any

	// ModelKey and SamplingKey name what produces the rows; Key adds the
	// template, plan limit, filter and gain settings, and an output made
	// with another Key is refused (pipeline.Job.Settings).
	ModelKey    pipeline.ModelKey
	SamplingKey map[string]string
	// GainModel names the model that scores gains (Gain), for the key:
	// rows with gains are not mixed with rows without.
	GainModel string
	// SeqContext is the number of tokens one sequence of the backend
	// holds (0 = unknown, as for a served model). A capacity reject
	// (prompt_too_long, context_full) records it, and a rerun with a larger
	// SeqContext (a raised --ctx) redoes the row instead of counting it done.
	// Job uses it as planned before the model loads; RunOn records it, which
	// the caller may raise to what the loaded engine holds.
	SeqContext int

	Logger   zerolog.Logger
	Progress bool // show a progress bar / periodic progress log lines
	// ProgressOut receives the progress display (nil = stderr).
	ProgressOut io.Writer
}

// OutputRow is one accepted row of the output file.
type OutputRow struct {
	ID           string         `json:"id"`
	Index        int64          `json:"index"`
	Prompt       string         `json:"prompt"`
	Plan         string         `json:"plan"`
	Response     string         `json:"response"`
	Source       string         `json:"source,omitempty"`
	Model        string         `json:"model,omitempty"`
	TemplateHash string         `json:"template_hash"`
	Sampling     map[string]any `json:"sampling,omitempty"`
	PromptTokens int            `json:"prompt_tokens"`
	PlanTokens   int            `json:"plan_tokens"`
	*Gain
	GainError string `json:"gain_error,omitempty"`
	// MatchesReference is set with Config.ReferenceField on rows that
	// have a reference plan.
	MatchesReference *bool `json:"matches_reference,omitempty"`
}

// RejectRow is one rejected row with the reason it failed.
type RejectRow struct {
	ID           string `json:"id"`
	Index        int64  `json:"index"`
	Reason       string `json:"reason"`
	Detail       string `json:"detail"`
	Output       string `json:"output"`
	Prompt       string `json:"prompt"`
	Response     string `json:"response"`
	Source       string `json:"source,omitempty"`
	TemplateHash string `json:"template_hash"`
	PlanTokens   int    `json:"plan_tokens"`
	// SeqContext, on a capacity reject (prompt_too_long, context_full),
	// is the tokens a sequence held (Config.SeqContext).
	SeqContext int `json:"seq_ctx,omitempty"`
	*Gain
	GainError string `json:"gain_error,omitempty"`

	hadReference bool // the row had a reference plan (counted in Summary)
	fitContext   int  // context_full: the --ctx that would fit the row
}

// Summary reports a run.
type Summary struct {
	pipeline.Stats
	Reasons      map[string]int64 `json:"reject_reasons"` // rejects per reason
	PromptWords  float64          `json:"mean_prompt_words"`
	PlanWords    float64          `json:"mean_plan_words"`
	ResponseWord float64          `json:"mean_response_words"`
	// GainAccepted and GainAll summarise the plans' gain (with Config.Gain)
	// over the accepted rows and over every scored row.
	GainAccepted *GainStats `json:"gain_accepted,omitempty"`
	GainAll      *GainStats `json:"gain_all,omitempty"`
	// ReferenceRows counts the rows of this run that had a reference plan
	// (Config.ReferenceField), and ReferenceMatches the accepted ones among
	// them whose plan equals it.
	ReferenceRows    int64 `json:"reference_rows,omitempty"`
	ReferenceMatches int64 `json:"reference_matches,omitempty"`
	// ContextFullFit is the smallest --ctx at which every row rejected as
	// context_full would have reached its plan limit (0 when none was).
	ContextFullFit int `json:"context_full_fit_ctx,omitempty"`
	// Predicted is set by the caller (see Predict) for local runs.
	Predicted *Prediction `json:"bench_prediction,omitempty"`
}

// ReasonPromptTooLong rejects rows whose extraction prompt does not fit in
// a sequence's context; they need a larger --ctx (or a smaller --parallel).
const ReasonPromptTooLong planner.Reason = "prompt_too_long"

// ReasonContextFull rejects rows whose plan was cut because the row's share
// of the context filled before --max-plan-tokens: the context, not the
// model, failed to finish it (the summary says which --ctx would fit, and a
// rerun with a larger --ctx redoes them, as for prompt_too_long).
const ReasonContextFull planner.Reason = "context_full"

// Describe says what a reject reason means, extract's own reasons
// (prompt_too_long, low_gain, context_full) included, for the run's summary.
func Describe(r planner.Reason) string {
	switch r {
	case ReasonPromptTooLong:
		return "the extraction prompt does not fit in a sequence's context: raise --ctx or lower --parallel"
	case ReasonLowGain:
		return "the plan's information gain is below --min-gain"
	case ReasonContextFull:
		return "the row's share of the context filled before --max-plan-tokens (not the model's failure)"
	}
	return r.Description()
}

// Key is the settings key of the run: the model and sampling, the template's
// hash, the plan token limit, the word filter as given, and the gain
// settings when gains are scored.
func (cfg Config) Key() dataset.Settings {
	key := cfg.ModelKey.Settings()
	for k, v := range cfg.SamplingKey {
		key[k] = v
	}
	tmpl := cfg.Template
	if tmpl == nil {
		tmpl = planner.DefaultTemplate()
	}
	key["template"] = tmpl.Hash()
	key["max_plan_tokens"] = strconv.Itoa(cfg.MaxPlanTokens)
	words := cfg.Filter.Given()
	key["min_words"], key["max_words"] = strconv.Itoa(words.MinWords), strconv.Itoa(words.MaxWords)
	if cfg.GainModel != "" {
		key["gain_model"] = cfg.GainModel
		if cfg.MinGain != nil {
			key["min_gain"] = strconv.FormatFloat(*cfg.MinGain, 'g', -1, 64)
		}
	}
	return key
}

// Job is the pipeline job of cfg: open it with pipeline.Open before loading
// the model, so that bad files cost nothing, and pass the batch to RunOn.
func (cfg Config) Job() pipeline.Job {
	read := cfg.Read
	if cfg.ReferenceField != "" {
		read.KeepRaw = true
	}
	return pipeline.Job{
		Name: "extract", Input: cfg.Input, Read: read, Output: cfg.Output, Rejects: cfg.Rejects,
		Shard: cfg.Shard, Limit: cfg.Limit, Workers: cfg.Workers, Settings: cfg.Key(), Redo: cfg.redo,
		Logger: cfg.Logger, Progress: cfg.Progress, ProgressOut: cfg.ProgressOut,
	}
}

// redo tells which rows already written are done again: those rejected for
// capacity (prompt_too_long, context_full) with a sequence smaller than this
// run's. A reject without seq_ctx (written before it was recorded) is redone
// once by any run that knows its sequence size, and then records it.
func (cfg Config) redo(row []byte) bool {
	if cfg.SeqContext <= 0 {
		return false
	}
	r := gjson.GetManyBytes(row, "reason", "seq_ctx")
	switch planner.Reason(r[0].String()) {
	case ReasonPromptTooLong, ReasonContextFull:
		return int(r[1].Int()) < cfg.SeqContext
	}
	return false
}

// Run extracts plans for every row of cfg.Input not yet in cfg.Output or
// cfg.Rejects (pipeline.Open, then RunOn).
func Run(soft, hard context.Context, gen Generator, cfg Config) (Summary, error) {
	b, err := pipeline.Open(cfg.Job())
	if err != nil {
		return Summary{Reasons: map[string]int64{}}, err
	}
	defer b.Close()
	return RunOn(soft, hard, b, gen, cfg)
}

// RunOn extracts plans for the rows of a batch opened from cfg.Job().
// Cancelling soft stops reading new rows; rows already sent to the model are
// finished and written (cancel hard to drop them: they are redone by the next
// run). A rerun resumes where this one stopped.
func RunOn(soft, hard context.Context, b *pipeline.Batch, gen Generator, cfg Config) (Summary, error) {
	sum := Summary{Reasons: map[string]int64{}}
	if cfg.Template == nil {
		cfg.Template = planner.DefaultTemplate()
	}
	if cfg.Filter == nil {
		cfg.Filter = planner.NewFilter(planner.FilterConfig{})
	}
	if cfg.MaxPlanTokens <= 0 {
		cfg.MaxPlanTokens = planner.DefaultExtractPlanTokens
	}
	soft, hard, gen, halted := watchHalt(soft, hard, gen)
	hash := cfg.Template.Hash()
	var words struct{ prompt, plan, response int64 }
	process := func(ctx context.Context, row dataset.Row) pipeline.Outcome {
		prompt, err := cfg.Template.Render(row.Prompt, row.Response)
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		reference, hasReference := referencePlan(row, cfg.ReferenceField)
		g, err := gen.Generate(ctx, row.ID, []planner.Message{{Role: planner.RoleUser, Content: prompt}}, cfg.MaxPlanTokens)
		var gain *Gain
		var gainErr string
		reject := func(reason planner.Reason, detail string) pipeline.Outcome {
			return pipeline.Outcome{Tokens: g.Tokens, PromptTokens: g.PromptTokens, Reject: RejectRow{
				ID: row.ID, Index: row.Index, Reason: string(reason), Detail: detail, Output: g.Text,
				Prompt: row.Prompt, Response: row.Response, Source: row.Source, TemplateHash: hash, PlanTokens: g.Tokens,
				Gain: gain, GainError: gainErr, hadReference: hasReference,
			}}
		}
		if lm.Permanent(err) {
			// Rejected (and visible in the rejects file), not redone until
			// a sequence holds more (see Config.redo).
			o := reject(ReasonPromptTooLong, err.Error())
			r := o.Reject.(RejectRow)
			r.SeqContext = cfg.SeqContext
			o.Reject = r
			return o
		}
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		plan, reason := cfg.Filter.Check(planner.Candidate{Output: g.Text, HitTokenLimit: g.HitLimit, Prompt: row.Prompt, Response: row.Response})
		if cfg.Gain != nil && strings.TrimSpace(plan) != "" {
			v, err := cfg.Gain.Gain(row.Prompt, plan, row.Response)
			switch {
			case errors.Is(err, ErrGainUnscored):
				gainErr = err.Error()
			case err != nil:
				return pipeline.Outcome{Err: fmt.Errorf("gain: %w", err)}
			default:
				gain = &v
			}
		}
		if reason == planner.NotTerminated && g.ContextFull {
			detail := fmt.Sprintf("the row's share of the context filled after %d prompt and %d plan tokens, before the plan limit of %d", g.PromptTokens, g.Tokens, cfg.MaxPlanTokens)
			if g.FitContext > 0 {
				detail += fmt.Sprintf(": --ctx %d would fit it", g.FitContext)
			}
			o := reject(ReasonContextFull, detail)
			r := o.Reject.(RejectRow)
			r.fitContext, r.SeqContext = g.FitContext, cfg.SeqContext
			o.Reject = r
			return o
		}
		if reason != planner.OK {
			return reject(reason, reason.Description())
		}
		if cfg.MinGain != nil && cfg.Gain != nil {
			switch {
			case gain == nil:
				return reject(ReasonLowGain, "gain could not be scored: "+gainErr)
			case gain.Nats < *cfg.MinGain:
				return reject(ReasonLowGain, fmt.Sprintf("gain %.4f nats per response token is below the minimum %g", gain.Nats, *cfg.MinGain))
			}
		}
		out := OutputRow{
			ID: row.ID, Index: row.Index, Prompt: row.Prompt, Plan: plan, Response: row.Response,
			Source: row.Source, Model: cfg.Model, TemplateHash: hash, Sampling: cfg.Sampling,
			PromptTokens: g.PromptTokens, PlanTokens: g.Tokens, Gain: gain, GainError: gainErr,
		}
		if hasReference {
			match := planner.CleanPlan(plan) == reference
			out.MatchesReference = &match
		}
		return pipeline.Outcome{Tokens: g.Tokens, PromptTokens: g.PromptTokens, Output: out}
	}
	var gainsAccepted, gainsAll []float64
	observe := func(o pipeline.Outcome) {
		switch v := o.Output.(type) {
		case OutputRow:
			if v.MatchesReference != nil {
				sum.ReferenceRows++
				if *v.MatchesReference {
					sum.ReferenceMatches++
				}
			}
			words.prompt += int64(planner.WordCount(v.Prompt))
			words.plan += int64(planner.WordCount(v.Plan))
			words.response += int64(planner.WordCount(v.Response))
			if v.Gain != nil {
				gainsAccepted = append(gainsAccepted, v.Gain.Nats)
				gainsAll = append(gainsAll, v.Gain.Nats)
			}
		}
		if r, ok := o.Reject.(RejectRow); ok {
			sum.ContextFullFit = max(sum.ContextFullFit, r.fitContext)
			sum.Reasons[r.Reason]++
			if r.hadReference {
				sum.ReferenceRows++
			}
			if r.Gain != nil {
				gainsAll = append(gainsAll, r.Gain.Nats)
			}
		}
	}
	b.SetWorkers(cfg.Workers)
	st, err := b.Run(soft, hard, process, observe)
	sum.Stats = st
	if cfg.Gain != nil {
		a, all := NewGainStats(gainsAccepted), NewGainStats(gainsAll)
		sum.GainAccepted, sum.GainAll = &a, &all
	}
	if herr := halted(); herr != nil {
		err = herr
	}
	if n := float64(st.Written); n > 0 {
		sum.PromptWords = float64(words.prompt) / n
		sum.PlanWords = float64(words.plan) / n
		sum.ResponseWord = float64(words.response) / n
	}
	return sum, err
}

// referencePlan returns the cleaned reference plan of row at the gjson path
// field, and whether the row has a non-empty one.
func referencePlan(row dataset.Row, field string) (string, bool) {
	if field == "" {
		return "", false
	}
	v := gjson.GetBytes(row.Raw, field)
	if v.Type != gjson.String || strings.TrimSpace(v.String()) == "" {
		return "", false
	}
	return planner.CleanPlan(v.String()), true
}
