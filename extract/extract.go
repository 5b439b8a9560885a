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
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/engine"
	"github.com/codeplan-dev/codeplan/internal/progress"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/planner/dataset"
)

// Generation is a model's reply to one extraction prompt.
type Generation struct {
	Text         string
	HitLimit     bool // stopped at the token limit: the plan did not terminate
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

	// Provenance copied into every output row.
	Model    string
	Sampling map[string]any

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
}

// Summary reports a run.
type Summary struct {
	Resumed      int64            `json:"resumed"`        // rows already done by an earlier run
	OtherShards  int64            `json:"other_shards"`   // rows left to other shards
	Duplicates   int64            `json:"duplicates"`     // repeated ids in the input
	Skipped      int64            `json:"skipped_bad"`    // malformed rows skipped (--skip-bad)
	Processed    int64            `json:"processed"`      // rows sent to the model this run
	Accepted     int64            `json:"accepted"`       // rows written to the output
	Rejected     int64            `json:"rejected"`       // rows written to the rejects file
	Failed       int64            `json:"failed"`         // rows whose generation failed (retried next run)
	Reasons      map[string]int64 `json:"reject_reasons"` // rejects per reason
	PromptWords  float64          `json:"mean_prompt_words"`
	PlanWords    float64          `json:"mean_plan_words"`
	ResponseWord float64          `json:"mean_response_words"`
	PromptTokens int64            `json:"prompt_tokens"`
	PlanTokens   int64            `json:"generated_tokens"`
	Elapsed      time.Duration    `json:"elapsed_ns"`
	Interrupted  bool             `json:"interrupted"`
}

// RowsPerSecond is processed rows per second of wall time.
func (s Summary) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Processed) / s.Elapsed.Seconds()
}

// TokensPerSecond is generated tokens per second of wall time.
func (s Summary) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.PlanTokens) / s.Elapsed.Seconds()
}

// ReasonPromptTooLong rejects rows whose extraction prompt does not fit in
// a sequence's context; they need a larger --ctx (or a smaller --parallel).
const ReasonPromptTooLong planner.Reason = "prompt_too_long"

// ErrNoInputRows is returned when the input holds no usable row.
var ErrNoInputRows = errors.New("no usable rows in the input")

type work struct {
	row dataset.Row
}

// Run extracts plans for every row of cfg.Input not yet in cfg.Output or
// cfg.Rejects. Cancelling ctx stops reading new rows; rows already sent to
// the model are finished and written (cancel hard to drop them: they are
// redone by the next run). A rerun resumes where this one stopped.
func Run(ctx, hard context.Context, gen Generator, cfg Config) (Summary, error) {
	start := time.Now()
	sum := Summary{Reasons: map[string]int64{}}
	if cfg.Template == nil {
		cfg.Template = planner.DefaultTemplate()
	}
	if cfg.Filter == nil {
		cfg.Filter = planner.NewFilter(planner.FilterConfig{})
	}
	if cfg.MaxPlanTokens <= 0 {
		cfg.MaxPlanTokens = 256
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	out, done, err := dataset.OpenAppend(cfg.Output)
	if err != nil {
		return sum, err
	}
	defer out.Close()
	if n := out.DroppedBytes(); n > 0 {
		cfg.Logger.Warn().Int64("bytes", n).Str("file", cfg.Output).Msg("dropped a torn last line left by an interrupted run; its row will be redone")
	}
	var rej *dataset.Writer
	if cfg.Rejects != "" {
		var rdone map[string]bool
		rej, rdone, err = dataset.OpenAppend(cfg.Rejects)
		if err != nil {
			return sum, err
		}
		defer rej.Close()
		for id := range rdone {
			done[id] = true
		}
	}
	in, err := dataset.Open(cfg.Input, cfg.Read)
	if err != nil {
		return sum, err
	}
	defer in.Close()

	var bar *progress.Reporter
	if cfg.Progress {
		total := int64(0)
		if cfg.Input != dataset.Stdin {
			if n, err := dataset.Count(cfg.Input, cfg.Read); err == nil && n > 0 {
				total = n
				if cfg.Shard.N > 1 {
					total = n / int64(cfg.Shard.N)
				}
				total -= int64(len(done))
				if cfg.Limit > 0 && total > cfg.Limit {
					total = cfg.Limit
				}
				total = max(total, 0)
			}
		}
		lg := cfg.Logger
		bar = progress.New(progress.Options{Out: cfg.ProgressOut, Total: total, Unit: "rows", Counters: []string{"ok", "rej", "fail"}, RateCounter: "tok", Logger: &lg, Message: "extract"})
		defer bar.Finish()
	}

	jobs := make(chan work)
	type outcome struct {
		row     dataset.Row
		gen     Generation
		err     error
		tooLong bool
	}
	results := make(chan outcome)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				prompt, err := cfg.Template.Render(j.row.Prompt, j.row.Response)
				if err != nil {
					results <- outcome{row: j.row, err: err}
					continue
				}
				g, err := gen.Generate(hard, j.row.ID, []planner.Message{{Role: planner.RoleUser, Content: prompt}}, cfg.MaxPlanTokens)
				results <- outcome{row: j.row, gen: g, err: err}
			}
		}()
	}

	// Reader: feeds rows to the workers until input ends or ctx is cancelled.
	var readErr error
	var words struct{ prompt, plan, response atomic.Int64 }
	go func() {
		defer close(jobs)
		seen := map[string]bool{}
		var sent int64
		for {
			if ctx.Err() != nil {
				return
			}
			row, err := in.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var re *dataset.RowError
				if errors.As(err, &re) && cfg.Read.SkipBad {
					continue
				}
				readErr = err
				return
			}
			switch {
			case !cfg.Shard.Keep(row.ID):
				sum.OtherShards++
				continue
			case done[row.ID]:
				sum.Resumed++
				continue
			case seen[row.ID]:
				sum.Duplicates++
				continue
			}
			seen[row.ID] = true
			if cfg.Limit > 0 && sent >= cfg.Limit {
				return
			}
			sent++
			select {
			case jobs <- work{row: row}:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	var writeErr error
	for r := range results {
		if errors.Is(r.err, engine.ErrPromptTooLong) {
			// Permanent: retrying would fail the same way, so reject the row
			// (visible in the rejects file) rather than redo it forever.
			r.gen.Text = r.err.Error()
			r.err = nil
			r.tooLong = true
		}
		if r.err != nil {
			sum.Failed++
			if bar != nil {
				bar.Add("fail", 1)
				bar.Advance(1)
			}
			if hard.Err() == nil {
				cfg.Logger.Warn().Str("id", r.row.ID).Str("source", r.row.Source).Err(r.err).Msg("generation failed; the row will be retried by the next run")
			}
			continue
		}
		sum.Processed++
		sum.PromptTokens += int64(r.gen.PromptTokens)
		sum.PlanTokens += int64(r.gen.Tokens)
		plan, reason := cfg.Filter.Check(planner.Candidate{Output: r.gen.Text, HitTokenLimit: r.gen.HitLimit, Prompt: r.row.Prompt, Response: r.row.Response})
		detail := reason.Description()
		if r.tooLong {
			reason, detail = ReasonPromptTooLong, r.gen.Text
		}
		if reason == planner.OK {
			err := out.Write(OutputRow{
				ID: r.row.ID, Index: r.row.Index, Prompt: r.row.Prompt, Plan: plan, Response: r.row.Response,
				Source: r.row.Source, Model: cfg.Model, TemplateHash: cfg.Template.Hash(), Sampling: cfg.Sampling,
				PromptTokens: r.gen.PromptTokens, PlanTokens: r.gen.Tokens,
			})
			if err != nil && writeErr == nil {
				writeErr = err
			}
			sum.Accepted++
			words.prompt.Add(int64(planner.WordCount(r.row.Prompt)))
			words.plan.Add(int64(planner.WordCount(plan)))
			words.response.Add(int64(planner.WordCount(r.row.Response)))
			if bar != nil {
				bar.Add("ok", 1)
			}
		} else {
			sum.Rejected++
			sum.Reasons[string(reason)]++
			if rej != nil {
				err := rej.Write(RejectRow{
					ID: r.row.ID, Index: r.row.Index, Reason: string(reason), Detail: detail,
					Output: r.gen.Text, Prompt: r.row.Prompt, Response: r.row.Response, Source: r.row.Source,
					TemplateHash: cfg.Template.Hash(), PlanTokens: r.gen.Tokens,
				})
				if err != nil && writeErr == nil {
					writeErr = err
				}
			}
			if bar != nil {
				bar.Add("rej", 1)
			}
		}
		if bar != nil {
			bar.Add("tok", int64(r.gen.Tokens))
			bar.Advance(1)
		}
	}
	sum.Skipped = in.Skipped().Total
	sum.Elapsed = time.Since(start)
	sum.Interrupted = ctx.Err() != nil
	if sum.Accepted > 0 {
		n := float64(sum.Accepted)
		sum.PromptWords = float64(words.prompt.Load()) / n
		sum.PlanWords = float64(words.plan.Load()) / n
		sum.ResponseWord = float64(words.response.Load()) / n
	}
	if err := out.Close(); err != nil && writeErr == nil {
		writeErr = err
	}
	if rej != nil {
		if err := rej.Close(); err != nil && writeErr == nil {
			writeErr = err
		}
	}
	if readErr != nil {
		return sum, readErr
	}
	if writeErr != nil {
		return sum, fmt.Errorf("write results: %w", writeErr)
	}
	if sum.Processed+sum.Failed+sum.Resumed+sum.OtherShards+sum.Duplicates == 0 && !sum.Interrupted {
		return sum, fmt.Errorf("%s: %w", cfg.Input, ErrNoInputRows)
	}
	return sum, nil
}
