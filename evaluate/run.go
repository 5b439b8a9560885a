// Package evaluate is `codeplan eval`: it answers every item of a benchmark
// in several modes (direct, nlplan, codeplan) on one continuous-batching
// engine, scores the answers, appends one crash-safe row per item and mode to
// DIR/results.jsonl (on the internal/pipeline row loop that extract and
// generate use); package report turns all rows of that file into a report
// (report.md, report.png, summary.json). A rerun of the same command skips the
// (item, mode) pairs already in the file, so an interrupted evaluation resumes
// and its report covers the whole benchmark.
//
// Every mode sees the same user message, the item's question followed by an
// answer-format hint (planner.Hint), so that the modes differ only in whether and how they
// plan; the answer is then found with package answer and scored against the
// gold answer.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/synth"
)

// File names inside the report folder.
const (
	ResultsFile  = "results.jsonl"
	rowIDDivider = "|"
)

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
	// Bench is the benchmark's name as given to eval (--bench), so that a
	// report rebuilt from the rows alone is titled with it.
	Bench string `json:"bench,omitempty"`
	// Task groups items in the report: the problem family of a synthetic
	// item (arith, list, text, order, truth), else the answer kind.
	Task      string `json:"task"`
	Steps     int    `json:"steps"`
	Question  string `json:"question"`
	Plan      string `json:"plan"`
	Output    string `json:"output"` // the answer text (after the plan)
	Extracted string `json:"extracted"`
	Gold      string `json:"gold"`
	Correct   bool   `json:"correct"`
	// StrictCorrect is Correct under strict extraction (answer.Strict):
	// only an answer marked in the form the prompt asked for counts.
	StrictCorrect bool    `json:"strict_correct"`
	F1            float64 `json:"f1"`

	PromptTokens int `json:"prompt_tokens"`
	PlanTokens   int `json:"plan_tokens"`
	AnswerTokens int `json:"answer_tokens"`
	// Seconds is the wall time from submitting the item to its last token.
	Seconds    float64 `json:"seconds"`
	PlanFinish string  `json:"plan_finish,omitempty"` // stop or length (the plan did not terminate)
	Finish     string  `json:"finish"`
	// Error is set for items that could not run: a prompt longer than a
	// sequence's context, or a generation cut because the sequence's share
	// of the context filled before a phase's token limit (finish
	// context_full, inference.FinishContextFull: the plan and answer so far
	// are kept, not scored). They count as wrong, the report says how many,
	// and a rerun with the same context does not retry them. SeqContext,
	// set when the context was what was missing, records the tokens a
	// sequence held (Config.SeqContext); a rerun with a larger one redoes
	// the row. FitContext, on a context_full row, is the --ctx at which its
	// sequence would hold the prompt and every phase's token limit (0 =
	// unknown).
	Error      string `json:"error,omitempty"`
	SeqContext int    `json:"seq_ctx,omitempty"`
	FitContext int    `json:"fit_ctx,omitempty"`

	Format planner.Format `json:"format"`
	Model  string         `json:"model,omitempty"`
	LoRA   string         `json:"lora,omitempty"`
	// Prompt is the prompt exactly as the model saw it (chat template and
	// few-shot turns included), with --log-samples.
	Prompt string `json:"prompt,omitempty"`
	// Run holds the settings that made the row (dataset.SettingsField),
	// as read back by ReadRows; the writer adds it, so it is not encoded.
	Run dataset.Settings `json:"-"`

	// Scoring is ScoringLoglik for multiple-choice rows scored by
	// log-likelihood (with ChoiceScores), empty for generated answers.
	Scoring      string        `json:"scoring,omitempty"`
	ChoiceScores *ChoiceScores `json:"choice_scores,omitempty"`
}

// Config describes one evaluation run.
type Config struct {
	// Items is the whole benchmark in order (see LoadItems); an item's
	// position in it fixes its rows' Index.
	Items []benchdata.Item
	// Modes are answered for every item, in this order per item.
	Modes []planner.Mode
	// Prompter supplies Format, Chat and System; Mode is set per row.
	Prompter planner.Prompter
	Settings inference.Settings
	// Choices, when set, scores multiple-choice items (with their option
	// texts) by log-likelihood instead of generation (eval --mc-scoring
	// loglik); other items are still generated.
	Choices ChoiceScorer
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
	// Bench is recorded in every row (Row.Bench): the report's title.
	Bench string
	// FewShot worked examples go before each question, FewShotN of them
	// (0 = zero-shot), as earlier turns in the mode's own format.
	FewShot  []Example
	FewShotN int
	// LogSamples records the rendered prompt of every item in its row.
	LogSamples bool
	// ModelKey names the model in the settings key (see Key).
	ModelKey pipeline.ModelKey
	// SeqContext is the number of tokens one sequence of the engine (and
	// of the choice scorer) holds (0 = unknown). Items that do not fit, and
	// those cut because it filled (context_full), are written as could not
	// run with it, and a rerun with a larger SeqContext (a raised --ctx)
	// redoes them, replacing their rows; it is not part of the settings
	// key. Open uses it as planned before the model loads; RunOn records
	// it, which the caller may raise to what the engine holds.
	SeqContext int
	// ContextFor is the --ctx at which each sequence holds perSequence
	// tokens (the engine's ContextFor; nil = unknown): a context_full row
	// names it.
	ContextFor func(perSequence int) int
	// FewShotKey names where FewShot came from, for the key: "FILE@HASH"
	// for a --fewshot-file (see FewShotFileKey), "" for the synthetic
	// benchmark's own train split.
	FewShotKey string
	// MCScoring is eval's --mc-scoring (ScoringGenerate or ScoringLoglik;
	// "" = generate). It is set before Open, as Choices is only once the
	// model is loaded: loglik scoring is part of the key.
	MCScoring string

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer // nil = stderr
}

// Stats count what one run did: the pipeline's counts (rows are item × mode
// pairs), plus the pairs selected and the rows that could not run.
type Stats struct {
	pipeline.Stats
	// Pairs is the number of (item, mode) pairs selected after Shard and
	// Limit; Resumed of them were already in results.jsonl.
	Pairs int64 `json:"pairs"`
	// Errors counts written rows that could not run (see Row.Error).
	Errors int64 `json:"errors"`
	// ContextFull counts those of them cut by a full context (finish
	// context_full); FitContext is the --ctx that fits them all (0 when
	// unknown for any of them).
	ContextFull int64 `json:"context_full"`
	FitContext  int   `json:"context_full_fit_ctx,omitempty"`
}

// Key is the settings key of the run: the model, format, system message,
// few-shot examples, token limits, sampling and multiple-choice scoring;
// a results file made with another Key is refused (pipeline.Job.Settings).
// Mode is not part of it: it is in every row id.
func (cfg Config) Key() dataset.Settings {
	key := cfg.ModelKey.Settings()
	key["format"], key["system"] = string(cfg.Prompter.Format), pipeline.TextKey(cfg.Prompter.System)
	if cfg.FewShotN > 0 {
		if cfg.FewShotKey != "" {
			key["fewshot"] = strconv.Itoa(cfg.FewShotN) + "@" + cfg.FewShotKey
		} else {
			key["fewshot"] = strconv.Itoa(cfg.FewShotN) + "@synth-seed+" + strconv.Itoa(FewShotSeedOffset)
		}
	}
	key["max_plan_tokens"], key["max_tokens"] = strconv.Itoa(cfg.Settings.MaxPlanTokens), strconv.Itoa(cfg.Settings.MaxTokens)
	for k, v := range cfg.Settings.Sampling.Key() {
		key[k] = v
	}
	if cfg.MCScoring == ScoringLoglik {
		key["mc_scoring"] = ScoringLoglik // absent for generate, as in results written before the flag
	}
	return key
}

// FewShotFileKey names a --fewshot-file in the settings key: its base name
// and a hash of its content, so that an edited file counts as another.
func FewShotFileKey(path string) (string, error) {
	sum, err := dataset.ContentHash(path)
	if err != nil {
		return "", err
	}
	return filepath.Base(path) + "@" + sum, nil
}

// RowID is the results.jsonl id of an item answered in a mode.
func RowID(itemID string, mode planner.Mode) string {
	return itemID + rowIDDivider + string(mode)
}

// task is one (item, mode) pair.
type task struct {
	item  benchdata.Item
	mode  planner.Mode
	index int64
}

// Open checks cfg and opens (and locks) Dir/results.jsonl for the selected
// pairs, before the caller loads a model: a results file from another model,
// adapter or setting is refused here (see Config.Key). Close the batch.
func Open(cfg Config) (*pipeline.Batch, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tasks := cfg.pairs()
	rows := make([]dataset.Row, len(tasks))
	for i, t := range tasks {
		rows[i] = dataset.Row{ID: RowID(t.item.ID, t.mode), Index: t.index, Source: t.item.ID}
	}
	return pipeline.Open(pipeline.Job{
		Name: "eval", Rows: pipeline.Rows(rows), Total: int64(len(rows)), Output: filepath.Join(cfg.Dir, ResultsFile),
		Workers: cfg.Workers, Settings: cfg.Key(), Redo: pipeline.RedoCapacity(cfg.SeqContext), Logger: cfg.Logger, Progress: cfg.Progress, ProgressOut: cfg.ProgressOut,
	})
}

// Run answers the selected items in every mode and appends their rows to
// Dir/results.jsonl, skipping pairs already there (Open, then RunOn).
func Run(soft, hard context.Context, gen lm.Generator, cfg Config) (Stats, error) {
	b, err := Open(cfg)
	if err != nil {
		return Stats{}, err
	}
	defer b.Close()
	return RunOn(soft, hard, b, gen, cfg)
}

// RunOn runs an opened batch on the internal/pipeline row loop, like
// extract and generate: cancelling soft stops starting new items and lets
// those in flight finish; cancelling hard also stops those (they are redone
// by the next run). It does not write the report: call BuildReport
// afterwards, also after an interruption.
func RunOn(soft, hard context.Context, b *pipeline.Batch, gen lm.Generator, cfg Config) (Stats, error) {
	var st Stats
	if err := cfg.check(); err != nil {
		return st, err
	}
	if cfg.Prompter.Chat == nil {
		return st, errors.New("evaluate: Prompter.Chat is nil")
	}
	tasks := cfg.pairs()
	byID := make(map[string]task, len(tasks))
	for _, t := range tasks {
		byID[RowID(t.item.ID, t.mode)] = t
	}
	st.Pairs = int64(len(tasks))
	cfg.Logger.Info().Int64("pairs", st.Pairs).Int("done", b.Done()).Str("results", filepath.Join(cfg.Dir, ResultsFile)).Msg("eval")
	process := func(ctx context.Context, r dataset.Row) pipeline.Outcome {
		return cfg.answer(ctx, gen, byID[r.ID])
	}
	unknownFit := false
	observe := func(o pipeline.Outcome) {
		if row, ok := o.Output.(Row); ok && row.Error != "" {
			st.Errors++
			if row.ContextFull() {
				st.ContextFull++
				unknownFit = unknownFit || row.FitContext <= 0
				st.FitContext = max(st.FitContext, row.FitContext)
			}
			cfg.Logger.Warn().Str("id", row.ID).Str("error", row.Error).
				Msg("item cannot run and is recorded as wrong (a rerun with a larger context redoes it)")
		}
	}
	b.SetWorkers(cfg.Workers)
	ps, err := b.Run(soft, hard, process, observe)
	st.Stats = ps
	if unknownFit {
		st.FitContext = 0
	}
	if err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(cfg.Dir, ResultsFile), err)
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

// pairs lists the pairs of this run, item by item with the modes of an
// item together, so that an interrupted run leaves every mode with about as
// many rows and its partial report is fair.
func (cfg *Config) pairs() []task {
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
func (cfg *Config) answer(ctx context.Context, gen lm.Generator, t task) pipeline.Outcome {
	it := t.item
	row := Row{
		ID: RowID(it.ID, t.mode), ItemID: it.ID, Mode: t.mode, Index: t.index, Kind: it.Kind, Task: Task(it), Steps: it.Steps,
		Question: it.Question, Gold: it.Gold, Format: cfg.Prompter.Format, Model: cfg.Model, LoRA: cfg.LoRA, Bench: cfg.Bench,
	}
	if cfg.scoresChoices(it) {
		return cfg.answerByLoglik(ctx, gen, t, row)
	}
	p := cfg.Prompter
	p.Mode = t.mode
	var history []planner.Message
	if cfg.FewShotN > 0 {
		h, err := fewShotHistory(cfg.FewShot, cfg.FewShotN, t.mode, it.Question, planner.Hint(it.Kind))
		if err != nil {
			return pipeline.Outcome{Err: err}
		}
		history = h
	}
	req, err := inference.Request(p, cfg.Settings, history, planner.UserMessage(it.Question, it.Kind), nil)
	if err != nil {
		return pipeline.Outcome{Err: err}
	}
	req.ID = row.ID
	if cfg.LogSamples && len(req.Phases) > 0 {
		row.Prompt = req.Phases[0].Prefix
	}
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
	case lm.Permanent(err):
		// Written (and counted as wrong) instead of being redone on every run.
		row.Error, row.SeqContext = err.Error(), cfg.SeqContext
		row.Finish = string(lm.FinishError)
		return pipeline.Outcome{Output: row}
	case err != nil:
		return pipeline.Outcome{Err: err}
	}
	if cut, ok := inference.CutByContext(req, res, &a); ok {
		// The context's failure, not the model's: could not run (not
		// scored), and redone by a rerun whose sequences hold more.
		if cfg.ContextFor != nil {
			row.FitContext = cfg.ContextFor(cut.Need)
		}
		row.PlanFinish, row.Finish = a.PlanFinish, a.Finish
		row.Error, row.SeqContext = cut.Detail(cfg.SeqContext, row.FitContext), cfg.SeqContext
		return pipeline.Outcome{Output: row, Tokens: a.PlanTokens + a.AnswerTokens, PromptTokens: a.PromptTokens}
	}
	row.Extracted, row.Correct, row.F1 = Score(it, row.Output)
	row.StrictCorrect = ScoreStrict(it, row.Output)
	return pipeline.Outcome{Output: row, Tokens: a.PlanTokens + a.AnswerTokens, PromptTokens: a.PromptTokens}
}

// ContextFull reports whether the row was cut by a full context (finish
// context_full in either phase).
func (r Row) ContextFull() bool {
	return r.Finish == inference.FinishContextFull || r.PlanFinish == inference.FinishContextFull
}

// Task is the report group of an item: the problem family of a synthetic
// item, named as in its benchmark name (synth-text gives "text"), else the
// item's answer kind.
func Task(it benchdata.Item) string {
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
func Score(it benchdata.Item, output string) (extracted string, correct bool, f1 float64) {
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

// ScoreStrict is Score's verdict under strict extraction: the answer must
// be stated with a marker ("The answer is ...", "####", \boxed{}), as the
// eval prompt asks; fallbacks such as the last number do not count.
func ScoreStrict(it benchdata.Item, output string) bool {
	var extracted string
	var ok bool
	if it.Kind == answer.Choice && len(it.Choices) > 0 {
		extracted, ok = answer.StrictChoice(output, it.Choices)
	} else {
		extracted, ok = answer.Strict(it.Kind, output)
	}
	return ok && answer.ScoreAny(it.Kind, extracted, it.Golds()).Correct
}
