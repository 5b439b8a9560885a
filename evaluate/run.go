// Package evaluate is `codeplan eval`: it answers every item of a benchmark
// in several modes (direct, nlplan, codeplan) on one continuous-batching
// engine, scores the answers, appends one crash-safe row per item and mode to
// DIR/results.jsonl, and turns all rows of that file into a report
// (report.md, report.png, summary.json). A rerun of the same command skips the
// (item, mode) pairs already in the file, so an interrupted evaluation resumes
// and its report covers the whole benchmark.
//
// Every mode sees the same user message, the item's question followed by an
// answer-format Hint, so that the modes differ only in whether and how they
// plan; the answer is then found with package answer and scored against the
// gold answer.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/engine"
	"github.com/codeplan-dev/codeplan/evaluate/answer"
	"github.com/codeplan-dev/codeplan/evaluate/bench"
	"github.com/codeplan-dev/codeplan/evaluate/synth"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/progress"
	"github.com/codeplan-dev/codeplan/planner"
)

// File names inside the report folder.
const (
	ResultsFile  = "results.jsonl"
	ReportFile   = "report.md"
	ChartFile    = "report.png"
	SummaryFile  = "summary.json"
	rowIDDivider = "|"
)

// Generator runs one engine request to completion; *engine.Engine
// implements it, and tests substitute a scripted one.
type Generator interface {
	Generate(ctx context.Context, req engine.Request) (engine.Result, error)
}

// Row is one line of results.jsonl: one item answered in one mode.
type Row struct {
	// ID is ItemID + "|" + Mode, the key a rerun skips done pairs by.
	ID     string       `json:"id"`
	ItemID string       `json:"item_id"`
	Mode   planner.Mode `json:"mode"`
	// Index orders rows like the benchmark: item position × 3 + the mode's
	// place in planner.Modes(), so it is unique and does not depend on
	// which modes a run asked for (dataset.Merge sorts by it).
	Index int64       `json:"index"`
	Kind  answer.Kind `json:"kind"`
	// Task groups items in the report: the problem family of a synthetic
	// item (arith, list, text, order, truth), else the answer kind.
	Task      string  `json:"task"`
	Steps     int     `json:"steps"`
	Question  string  `json:"question"`
	Plan      string  `json:"plan"`
	Output    string  `json:"output"` // the answer text (after the plan)
	Extracted string  `json:"extracted"`
	Gold      string  `json:"gold"`
	Correct   bool    `json:"correct"`
	F1        float64 `json:"f1"`

	PromptTokens int `json:"prompt_tokens"`
	PlanTokens   int `json:"plan_tokens"`
	AnswerTokens int `json:"answer_tokens"`
	// Seconds is the wall time from submitting the item to its last token.
	Seconds    float64 `json:"seconds"`
	PlanFinish string  `json:"plan_finish,omitempty"` // stop or length (the plan did not terminate)
	Finish     string  `json:"finish"`
	// Error is set for items that cannot run at all (prompt longer than a
	// sequence's context); they count as wrong and are not retried.
	Error string `json:"error,omitempty"`

	Format planner.Format `json:"format"`
	Model  string         `json:"model,omitempty"`
	LoRA   string         `json:"lora,omitempty"`
}

// Config describes one evaluation run.
type Config struct {
	// Items is the whole benchmark in order (see LoadItems); an item's
	// position in it fixes its rows' Index.
	Items []bench.Item
	// Modes are answered for every item, in this order per item.
	Modes []planner.Mode
	// Prompter supplies Format, Chat and System; Mode is set per row.
	Prompter planner.Prompter
	Settings inference.Settings
	// Shard keeps only the items of one shard (by item id), and Limit
	// then the first Limit of those (0 = all).
	Shard dataset.ShardSpec
	Limit int
	// Dir is the report folder; results go to Dir/results.jsonl.
	Dir string
	// Workers is the number of items in flight. Set it to the engine's
	// parallel sequence count: more would wait in the engine's queue, and
	// that wait would count in an item's Seconds.
	Workers int
	// Model and LoRA are recorded in every row (file base names).
	Model, LoRA string

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer // nil = stderr
}

// Stats count what one run did.
type Stats struct {
	// Pairs is the number of (item, mode) pairs selected after Shard and
	// Limit; Resumed of them were already in results.jsonl.
	Pairs   int `json:"pairs"`
	Resumed int `json:"resumed"`
	// Written rows this run, of which Errors could not run (see Row.Error).
	Written int `json:"written"`
	Errors  int `json:"errors"`
	// Failed pairs were not written and are redone by the next run.
	Failed       int           `json:"failed"`
	Tokens       int64         `json:"generated_tokens"`
	PromptTokens int64         `json:"prompt_tokens"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	Interrupted  bool          `json:"interrupted"`
}

// TokensPerSecond is generated tokens per second of wall time.
func (s Stats) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Tokens) / s.Elapsed.Seconds()
}

// RowID is the results.jsonl id of an item answered in a mode.
func RowID(itemID string, mode planner.Mode) string {
	return itemID + rowIDDivider + string(mode)
}

// task is one (item, mode) pair still to do.
type task struct {
	item  bench.Item
	mode  planner.Mode
	index int64
}

// outcome is a worker's answer for a task: a row, or an error when the
// pair must be redone by the next run.
type outcome struct {
	row    Row
	err    error
	tokens int
	prompt int
}

// Run answers the selected items in every mode and appends their rows to
// Dir/results.jsonl, skipping pairs already there. Cancelling soft stops
// starting new items and lets those in flight finish; cancelling hard also
// stops those (they are redone by the next run). Run does not write the
// report: call BuildReport afterwards, also after an interruption.
func Run(soft, hard context.Context, gen Generator, cfg Config) (Stats, error) {
	start := time.Now()
	var st Stats
	if err := cfg.check(); err != nil {
		return st, err
	}
	out, done, err := dataset.OpenAppend(filepath.Join(cfg.Dir, ResultsFile))
	if err != nil {
		return st, err
	}
	defer out.Close()
	if n := out.DroppedBytes(); n > 0 {
		cfg.Logger.Warn().Int64("bytes", n).Str("file", out.Name()).Msg("dropped a torn last line left by an interrupted run; its row will be redone")
	}
	tasks := cfg.pending(done, &st)
	cfg.Logger.Info().Int("pairs", st.Pairs).Int("done", st.Resumed).Int("todo", len(tasks)).Str("results", out.Name()).Msg("eval")

	var bar *progress.Reporter
	if cfg.Progress {
		lg := cfg.Logger
		counters := make([]string, 0, len(cfg.Modes)+1)
		for _, m := range cfg.Modes {
			counters = append(counters, string(m))
		}
		bar = progress.New(progress.Options{Out: cfg.ProgressOut, Total: int64(len(tasks)), Unit: "rows",
			Counters: append(counters, "fail"), RateCounter: "tok", Logger: &lg, Message: "eval"})
		defer bar.Finish()
	}

	// feed ends with soft, or when results can no longer be written.
	feed, stopFeed := context.WithCancel(soft)
	defer stopFeed()
	todo := make(chan task)
	results := make(chan outcome, cfg.Workers)
	go func() {
		defer close(todo)
		for _, t := range tasks {
			select {
			case todo <- t:
			case <-feed.Done():
				return
			}
		}
	}()
	var workers sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for t := range todo {
				results <- cfg.answer(hard, gen, t)
			}
		}()
	}
	go func() {
		workers.Wait()
		close(results)
	}()

	var writeErr error
	for o := range results {
		if o.err != nil {
			st.Failed++
			if hard.Err() == nil {
				cfg.Logger.Warn().Str("id", o.row.ID).Err(o.err).Msg("item failed; the next run retries it")
			}
			if bar != nil {
				bar.Add("fail", 1)
				bar.Advance(1)
			}
			continue
		}
		if writeErr != nil {
			continue // the run ends with writeErr; a rerun redoes this pair
		}
		if writeErr = out.Write(o.row); writeErr != nil {
			stopFeed()
			continue
		}
		st.Written++
		if o.row.Error != "" {
			st.Errors++
			cfg.Logger.Warn().Str("id", o.row.ID).Str("error", o.row.Error).
				Msg("item cannot run and is recorded as wrong (to retry it with a larger --ctx or a smaller --parallel, delete its row)")
		}
		st.Tokens += int64(o.tokens)
		st.PromptTokens += int64(o.prompt)
		if bar != nil {
			bar.Add(string(o.row.Mode), 1)
			bar.Add("tok", int64(o.tokens))
			bar.Advance(1)
		}
	}
	st.Elapsed = time.Since(start)
	st.Interrupted = hard.Err() != nil || (soft.Err() != nil && st.Written+st.Failed < len(tasks))
	if err := out.Close(); err != nil && writeErr == nil {
		writeErr = err
	}
	if writeErr != nil {
		return st, fmt.Errorf("write %s: %w", filepath.Join(cfg.Dir, ResultsFile), writeErr)
	}
	return st, nil
}

func (cfg *Config) check() error {
	switch {
	case len(cfg.Items) == 0:
		return errors.New("evaluate: no items")
	case len(cfg.Modes) == 0:
		return errors.New("evaluate: no modes")
	case cfg.Dir == "":
		return errors.New("evaluate: no report folder")
	case cfg.Prompter.Chat == nil:
		return errors.New("evaluate: Prompter.Chat is nil")
	}
	for _, m := range cfg.Modes {
		if !m.Valid() {
			return fmt.Errorf("evaluate: invalid mode %q", string(m))
		}
	}
	if !cfg.Prompter.Format.Valid() {
		return fmt.Errorf("evaluate: invalid format %q", string(cfg.Prompter.Format))
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	return nil
}

// pending lists the pairs of this run that are not done yet, item by item
// with the modes of an item together, so that an interrupted run leaves
// every mode with about as many rows and its partial report is fair.
func (cfg *Config) pending(done map[string]bool, st *Stats) []task {
	var tasks []task
	items := 0
	for pos, it := range cfg.Items {
		if !cfg.Shard.Keep(it.ID) {
			continue
		}
		if cfg.Limit > 0 && items >= cfg.Limit {
			break
		}
		items++
		for _, m := range cfg.Modes {
			st.Pairs++
			if done[RowID(it.ID, m)] {
				st.Resumed++
				continue
			}
			tasks = append(tasks, task{item: it, mode: m, index: int64(pos)*int64(len(planner.Modes())) + int64(modeOrder(m))})
		}
	}
	return tasks
}

func modeOrder(m planner.Mode) int {
	for i, mm := range planner.Modes() {
		if mm == m {
			return i
		}
	}
	return 0
}

// answer runs one pair and scores it.
func (cfg *Config) answer(ctx context.Context, gen Generator, t task) outcome {
	it := t.item
	row := Row{
		ID: RowID(it.ID, t.mode), ItemID: it.ID, Mode: t.mode, Index: t.index, Kind: it.Kind, Task: Task(it), Steps: it.Steps,
		Question: it.Question, Gold: it.Gold, Format: cfg.Prompter.Format, Model: cfg.Model, LoRA: cfg.LoRA,
	}
	p := cfg.Prompter
	p.Mode = t.mode
	req, err := inference.Request(p, cfg.Settings, nil, UserMessage(it), nil)
	if err != nil {
		return outcome{row: row, err: err}
	}
	req.ID = row.ID
	start := time.Now()
	res, err := gen.Generate(ctx, req)
	elapsed := res.Elapsed
	if elapsed <= 0 {
		elapsed = time.Since(start)
	}
	a := inference.FromResult(t.mode, res)
	row.Plan, row.Output = a.Plan, a.Answer
	row.PromptTokens, row.PlanTokens, row.AnswerTokens = a.PromptTokens, a.PlanTokens, a.AnswerTokens
	row.PlanFinish, row.Finish = a.PlanFinish, a.Finish
	row.Seconds = elapsed.Seconds()
	switch {
	case errors.Is(err, engine.ErrPromptTooLong):
		// Permanent: a retry fails the same way, so the row is written
		// (and counts as wrong) instead of being redone on every run.
		row.Error = err.Error()
		row.Finish = string(engine.FinishError)
		return outcome{row: row}
	case err != nil:
		return outcome{row: row, err: err}
	}
	row.Extracted, row.Correct, row.F1 = Score(it, row.Output)
	return outcome{row: row, tokens: a.PlanTokens + a.AnswerTokens, prompt: a.PromptTokens}
}

// Task is the report group of an item: the problem family of a synthetic
// item, named as in its benchmark name (synth-text gives "text"), else the
// item's answer kind.
func Task(it bench.Item) string {
	k := it.Meta["synth_kind"]
	if k == "" {
		// Rows written by `codeplan synth` name their family "kind".
		if sk, err := synth.ParseKind(it.Meta["kind"]); err == nil && it.Meta["kind"] == string(sk) {
			k = string(sk)
		}
	}
	switch k {
	case "":
		return string(it.Kind)
	case string(synth.String):
		return "text"
	default:
		return k
	}
}

// Score extracts the final answer of an item's kind from a model's answer
// text and compares it with every acceptable gold answer. Multiple-choice
// items with known option texts also accept an answer that names an
// option.
func Score(it bench.Item, output string) (extracted string, correct bool, f1 float64) {
	var ok bool
	if it.Kind == answer.Choice && len(it.Choices) > 0 {
		extracted, ok = answer.FinalChoice(output, it.Choices)
	} else {
		extracted, ok = answer.Final(it.Kind, output)
	}
	if !ok {
		return "", false, 0
	}
	v := answer.ScoreAny(it.Kind, extracted, it.Golds())
	return extracted, v.Correct, v.F1
}
