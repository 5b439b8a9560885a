// Package perplexity is `codeplan perplexity` as a job on the resumable row
// loop (internal/pipeline) that extract, generate and eval use: every row
// is scored by prompt processing only and one JSON line per row is
// appended to a crash-safe output, so that Ctrl-C, kill -9 and a rerun
// behave as they do for extract. What is scored is one of three layouts:
// a text from its start, chunks as llama.cpp's llama-perplexity cuts them,
// or a response given its prompt (and plan) in the layout a model was
// trained on (Prompter).
package perplexity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Scorer builds and scores log-likelihood requests; llama/loglik's *Text
// implements it.
type Scorer interface {
	Whole(text string) (lm.ScoreRequest, error)
	Chunks(text string, n int) ([]lm.ScoreRequest, error)
	Pair(context, continuation string) (lm.ScoreRequest, error)
	Score(reqs []lm.ScoreRequest) ([]lm.Scores, error)
}

// Row is one line of the output.
type Row struct {
	ID     string `json:"id"`
	Index  int64  `json:"index"`
	Tokens int    `json:"tokens"` // scored tokens
	// LogLik is the summed log-likelihood of the scored tokens (nats).
	LogLik      float64 `json:"loglik"`
	MeanLogProb float64 `json:"mean_logprob"`
	Perplexity  float64 `json:"perplexity"`
	Chunks      int     `json:"chunks,omitempty"`
	// Error is set on a row that could not be scored and was skipped
	// (SkipBad): it counts as done, and not in the figures.
	Error string `json:"error,omitempty"`
}

// Config describes one perplexity run.
type Config struct {
	Input  string
	Read   dataset.ReadOptions // PromptField is the text (or the prompt with Pair)
	Output string              // per-row results (JSONL; "-" = stdout, not resumable)
	Limit  int64

	// Pair scores Read.ResponseField given the prompt, rendered by
	// Prompter (its Mode and Format: the layout the model was trained
	// on), with the plan at gjson path PlanField for a plan mode.
	// Otherwise the text is scored from its start, or in chunks of Chunk
	// tokens when Chunk > 0.
	Pair      bool
	Prompter  planner.Prompter
	PlanField string
	Chunk     int
	// SkipBad writes a row that cannot be scored (too short, too long for
	// a sequence, over the tokenizer's limit, a plan the layout refuses)
	// with its Error and goes on, instead of stopping the run.
	SkipBad bool

	// Sequences is how many requests are scored together (the scoring
	// context's sequences); it also sets the rows in flight.
	Sequences int
	// ModelKey names the model in the settings key (see Key).
	ModelKey pipeline.ModelKey

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer
}

// Layout says in words what the run scores, for the summary.
func (cfg Config) Layout() string {
	switch {
	case cfg.Pair && cfg.Prompter.Mode.HasPlan():
		return fmt.Sprintf("response given prompt and plan (%s), %s mode, %s format", cfg.PlanField, cfg.Prompter.Mode, cfg.Prompter.Format)
	case cfg.Pair:
		return fmt.Sprintf("response given prompt, %s mode, %s format", cfg.Prompter.Mode, cfg.Prompter.Format)
	case cfg.Chunk > 0:
		return fmt.Sprintf("chunks of %d tokens, second halves scored (as llama-perplexity -c %d)", cfg.Chunk, cfg.Chunk)
	}
	return "text from its start"
}

// Key is the settings key of the run: the model and what is scored (the
// fields, the layout, the chunk size), so that a rerun with other settings
// is refused instead of mixing figures in one output.
func (cfg Config) Key() dataset.Settings {
	key := cfg.ModelKey.Settings()
	key["text_field"], key["chunk"] = cfg.Read.PromptField, strconv.Itoa(cfg.Chunk)
	if cfg.Pair {
		key["text_field"] = ""
		key["prompt_field"], key["response_field"], key["plan_field"] = cfg.Read.PromptField, cfg.Read.ResponseField, cfg.PlanField
		key["mode"], key["format"], key["system"] = string(cfg.Prompter.Mode), string(cfg.Prompter.Format), pipeline.TextKey(cfg.Prompter.System)
	}
	return key
}

// Job is the pipeline job of cfg: open it before loading the model.
func (cfg Config) Job() pipeline.Job {
	read := cfg.Read
	if cfg.PlanField != "" {
		read.KeepRaw = true
	}
	return pipeline.Job{
		Name: "perplexity", Input: cfg.Input, Read: read, Output: cfg.Output, Limit: cfg.Limit,
		Workers: max(1, cfg.Sequences), Settings: cfg.Key(),
		Logger: cfg.Logger, Progress: cfg.Progress, ProgressOut: cfg.ProgressOut,
	}
}

// Open checks the input (and, with PlanField, that every row has a plan)
// and opens the output, before the model loads.
func Open(cfg Config) (*pipeline.Batch, error) {
	if cfg.PlanField != "" {
		if err := checkPlans(cfg); err != nil {
			return nil, err
		}
	}
	return pipeline.Open(cfg.Job())
}

// checkPlans reads the input once and refuses a row without a plan at
// PlanField, naming it.
func checkPlans(cfg Config) error {
	if cfg.Input == dataset.Stdin {
		return nil // read once only: checked as rows come
	}
	read := cfg.Job().Read
	read.SkipBad = true // dataset.Check reports malformed rows
	rd, err := dataset.Open(cfg.Input, read)
	if err != nil {
		return nil // pipeline.Open words this
	}
	defer rd.Close()
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil
		}
		if _, err := plan(row, cfg.PlanField); err != nil && !cfg.SkipBad {
			return dataset.BadInputf("%s (id %s): %v", row.Source, row.ID, err)
		}
	}
}

func plan(row dataset.Row, field string) (string, error) {
	v := gjson.GetBytes(row.Raw, field)
	if v.Type != gjson.String || strings.TrimSpace(v.String()) == "" {
		return "", fmt.Errorf("no plan at --plan-field %s", field)
	}
	return v.String(), nil
}

// Summary reports a run: the pipeline's counts, and the figures over every
// scored row of the output (this run's and earlier runs').
type Summary struct {
	pipeline.Stats
	Layout string `json:"layout"`
	Rows   int    `json:"rows"`
	// Skipped counts rows written with an error (SkipBad); ShortOfChunk
	// rows shorter than one chunk, which have no figure either.
	Skipped      int     `json:"rows_skipped"`
	ShortOfChunk int     `json:"rows_shorter_than_a_chunk,omitempty"`
	Tokens       int     `json:"tokens"`
	LogLik       float64 `json:"loglik"`
	Perplexity   float64 `json:"perplexity"`
	// RowMedian is the median of the rows' perplexities.
	RowMedian float64 `json:"row_perplexity_median"`
	Seconds   float64 `json:"seconds"`
}

// badRow is a row that cannot be scored; without SkipBad the first one
// stops the run.
type badRow struct{ err error }

// RunOn scores the rows of a batch opened with Open. Cancelling soft stops
// reading rows and finishes those in flight; cancelling hard drops them
// (they are redone by the next run). Without SkipBad, the first row that
// cannot be scored stops the run with an error naming it (exit 2 in the
// command); rows scored before it are kept.
func RunOn(soft, hard context.Context, b *pipeline.Batch, sc Scorer, cfg Config) (Summary, error) {
	sum := Summary{Layout: cfg.Layout()}
	start := time.Now()
	soft, stop := context.WithCancel(soft)
	defer stop()
	var (
		mu  sync.Mutex
		bad error
	)
	fail := func(err error) {
		mu.Lock()
		if bad == nil {
			bad = err
		}
		mu.Unlock()
		stop()
	}
	bt := newBatcher(sc, max(1, cfg.Sequences))
	defer bt.close()
	var scored []Row
	process := func(ctx context.Context, row dataset.Row) pipeline.Outcome {
		reqs, err := cfg.requests(sc, row)
		out := Row{ID: row.ID, Index: row.Index, Chunks: len(reqs)}
		if cfg.Chunk == 0 {
			out.Chunks = 0
		}
		if err == nil && len(reqs) == 0 {
			err = errShort
		}
		if err == nil {
			var res []lm.Scores
			if res, err = bt.score(ctx, reqs); err != nil && !errors.Is(err, lm.ErrTooLong) {
				return pipeline.Outcome{Err: err}
			}
			if err == nil {
				var t lm.Tally
				for _, r := range res {
					t.Add(r)
				}
				out.Tokens, out.LogLik = t.Tokens, t.LogLik
				out.MeanLogProb, out.Perplexity = t.LogLik/float64(t.Tokens), t.Perplexity()
				return pipeline.Outcome{Output: out, PromptTokens: t.Tokens}
			}
		}
		if errors.Is(err, errShort) && cfg.Chunk > 0 {
			cfg.Logger.Warn().Str("row", row.Source).Int("chunk", cfg.Chunk).Msg("row is shorter than one chunk: skipped")
			out.Error = err.Error()
			return pipeline.Outcome{Output: out}
		}
		if cfg.SkipBad {
			cfg.Logger.Warn().Str("row", row.Source).Str("id", row.ID).Err(err).Msg("row cannot be scored: skipped (--skip-bad)")
			out.Error = err.Error()
			return pipeline.Outcome{Output: out}
		}
		err = badRow{fmt.Errorf("%s (id %s): %v", row.Source, row.ID, err)}
		fail(err)
		return pipeline.Outcome{Err: err}
	}
	observe := func(o pipeline.Outcome) {
		if r, ok := o.Output.(Row); ok {
			scored = append(scored, r)
		}
	}
	st, err := b.Run(soft, hard, process, observe)
	sum.Stats = st
	if bad != nil {
		sum.Failed-- // the row that stopped the run is reported as the error
		if err == nil {
			err = dataset.BadInputf("%v (or pass --skip-bad to skip such rows)", bad.(badRow).err)
		}
	}
	rows := scored
	if cfg.Output != dataset.Stdin {
		if all, rerr := ReadRows(cfg.Output); rerr == nil {
			rows = all
		}
	}
	sum.tally(rows, cfg.Chunk > 0)
	sum.Seconds = time.Since(start).Seconds()
	return sum, err
}

var errShort = errors.New("shorter than one chunk: nothing to score")

func (e badRow) Error() string { return e.err.Error() }

// requests builds the row's requests in the run's layout.
func (cfg Config) requests(sc Scorer, row dataset.Row) ([]lm.ScoreRequest, error) {
	switch {
	case cfg.Pair:
		p := ""
		if cfg.Prompter.Mode.HasPlan() {
			var err error
			if p, err = plan(row, cfg.PlanField); err != nil {
				return nil, err
			}
		}
		ph, err := cfg.Prompter.AnswerPrompt(nil, row.Prompt, p)
		if err != nil {
			return nil, err
		}
		r, err := sc.Pair(ph.Text, strings.TrimSpace(row.Response)) // as finetune's target
		return []lm.ScoreRequest{r}, err
	case cfg.Chunk > 0:
		return sc.Chunks(row.Prompt, cfg.Chunk)
	}
	r, err := sc.Whole(row.Prompt)
	return []lm.ScoreRequest{r}, err
}

// tally fills the figures from rows.
func (s *Summary) tally(rows []Row, chunked bool) {
	var t lm.Tally
	var ppl []float64
	for _, r := range rows {
		if r.Error != "" {
			if chunked && r.Error == errShort.Error() {
				s.ShortOfChunk++
			} else {
				s.Skipped++
			}
			continue
		}
		s.Rows++
		t.Tokens += r.Tokens
		t.LogLik += r.LogLik
		ppl = append(ppl, r.Perplexity)
	}
	s.Tokens, s.LogLik = t.Tokens, t.LogLik
	s.Perplexity = math.NaN()
	if t.Tokens > 0 {
		s.Perplexity = t.Perplexity()
	}
	s.RowMedian = median(ppl)
}

// ReadRows reads the rows of a perplexity output (a torn last line is
// ignored: the next run redoes its row).
func ReadRows(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r Row
		if gjson.Valid(line) {
			v := gjson.Parse(line)
			r = Row{ID: v.Get("id").String(), Index: v.Get("index").Int(), Tokens: int(v.Get("tokens").Int()), LogLik: v.Get("loglik").Float(),
				MeanLogProb: v.Get("mean_logprob").Float(), Perplexity: v.Get("perplexity").Float(), Chunks: int(v.Get("chunks").Int()), Error: v.Get("error").String()}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
