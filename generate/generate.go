// Package generate is `codeplan generate`: it answers every prompt of a
// corpus plan-first (or directly) on one continuous-batching engine and
// appends one crash-safe JSON row per prompt to the output, on the
// internal/pipeline row loop that extract and eval use. A rerun of the same
// command resumes; a rerun with another model, adapter, mode, format or
// sampling setting is refused (see Config.Key).
package generate

import (
	"context"
	"io"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Row is one line of the output: a prompt and its answer.
type Row struct {
	ID     string `json:"id"`
	Index  int64  `json:"index"`
	Prompt string `json:"prompt"`
	inference.Answer
	// Error is set for prompts that the context could not hold: longer
	// than a sequence's context, or cut because the sequence's share of the
	// context filled before a phase's token limit (finish context_full,
	// inference.FinishContextFull; the text so far is kept). Such a row is
	// written once, not retried by every rerun of the same context.
	// SeqContext records the tokens a sequence held (Config.SeqContext); a
	// rerun with a larger one redoes the row. FitContext, on a context_full
	// row, is the --ctx at which its sequence would hold the prompt and
	// every phase's token limit (0 = unknown).
	Error      string `json:"error,omitempty"`
	SeqContext int    `json:"seq_ctx,omitempty"`
	FitContext int    `json:"fit_ctx,omitempty"`
	Source     string `json:"source,omitempty"`
	Model      string `json:"model,omitempty"`
	LoRA       string `json:"lora,omitempty"`
}

// Config describes one generate run.
type Config struct {
	Input  string // prompts ("-" = stdin)
	Read   dataset.ReadOptions
	Output string // answers (JSONL, resumable)
	Shard  dataset.ShardSpec
	Limit  int64 // answer at most this many new prompts (0 = all)

	// Prompter fixes the mode, format, chat template and system message.
	Prompter planner.Prompter
	Settings inference.Settings
	Workers  int // prompts in flight (twice the engine's sequences keeps it full)

	// Model and LoRA are recorded in every row (file base names).
	Model, LoRA string
	// ModelKey names the model in the settings key (see Key).
	ModelKey pipeline.ModelKey
	// SeqContext is the number of tokens one sequence of the engine holds
	// (0 = unknown). Prompts too long for it, and rows cut because it
	// filled (finish context_full), are written with an error and it, and a
	// rerun with a larger SeqContext (a raised --ctx) redoes them, replacing
	// their rows; it is not part of the settings key. Job uses it as
	// planned before the model loads; RunOn records it, which the caller
	// may raise to what the loaded engine holds (llama.cpp pads it).
	SeqContext int
	// ContextFor is the --ctx at which each sequence holds perSequence
	// tokens (the engine's ContextFor; nil = unknown): a context_full row
	// names it.
	ContextFor func(perSequence int) int

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer // nil = stderr
}

// Key is the settings key of the run (pipeline.Job.Settings): the model,
// the mode, format and system message, the token limits and the sampling.
func (cfg Config) Key() dataset.Settings {
	key := cfg.ModelKey.Settings()
	p := cfg.Prompter
	key["mode"], key["format"], key["system"] = string(p.Mode), string(p.Format), pipeline.TextKey(p.System)
	key["max_plan_tokens"], key["max_tokens"] = strconv.Itoa(cfg.Settings.MaxPlanTokens), strconv.Itoa(cfg.Settings.MaxTokens)
	for k, v := range cfg.Settings.Sampling.Key() {
		key[k] = v
	}
	return key
}

// Job is the pipeline job of cfg (Read.PromptOnly is set: generate needs
// only prompts).
func (cfg Config) Job() pipeline.Job {
	read := cfg.Read
	read.PromptOnly = true
	return pipeline.Job{
		Name: "generate", Input: cfg.Input, Read: read, Output: cfg.Output, Shard: cfg.Shard, Limit: cfg.Limit,
		Workers: cfg.Workers, Ordered: true, Settings: cfg.Key(), Redo: pipeline.RedoCapacity(cfg.SeqContext), Logger: cfg.Logger, Progress: cfg.Progress, ProgressOut: cfg.ProgressOut,
	}
}

// Run answers every prompt of cfg.Input not yet in cfg.Output.
func Run(soft, hard context.Context, gen lm.Generator, cfg Config) (pipeline.Stats, error) {
	b, err := pipeline.Open(cfg.Job())
	if err != nil {
		return pipeline.Stats{}, err
	}
	defer b.Close()
	return RunOn(soft, hard, b, gen, cfg)
}

// RunOn answers the prompts of a batch opened with pipeline.Open(cfg.Job())
// (open it before loading the model, so that bad files cost nothing).
// Cancelling soft stops taking new prompts and finishes those in flight.
func RunOn(soft, hard context.Context, b *pipeline.Batch, gen lm.Generator, cfg Config) (pipeline.Stats, error) {
	b.SetWorkers(cfg.Workers)
	return b.Run(soft, hard, func(ctx context.Context, row dataset.Row) pipeline.Outcome {
		return cfg.answer(ctx, gen, row)
	}, nil)
}

func (cfg *Config) answer(ctx context.Context, gen lm.Generator, row dataset.Row) pipeline.Outcome {
	out := Row{ID: row.ID, Index: row.Index, Prompt: row.Prompt, Source: row.Source, Model: cfg.Model, LoRA: cfg.LoRA}
	req, err := inference.Request(cfg.Prompter, cfg.Settings, nil, row.Prompt, nil)
	if err != nil {
		return pipeline.Outcome{Err: err}
	}
	req.ID = row.ID
	res, err := gen.Generate(ctx, req)
	out.Answer = inference.FromResult(cfg.Prompter.Mode, res)
	switch {
	case lm.Permanent(err):
		// Written with its error, so the output has a row for every prompt
		// and a rerun does not retry it forever.
		out.Error, out.SeqContext = err.Error(), cfg.SeqContext
		return pipeline.Outcome{Output: out}
	case err != nil:
		return pipeline.Outcome{Err: err}
	}
	if cut, ok := inference.CutByContext(req, res, &out.Answer); ok {
		// The context's failure, not the model's: said in the row, and
		// redone by a rerun whose sequences hold more.
		if cfg.ContextFor != nil {
			out.FitContext = cfg.ContextFor(cut.Need)
		}
		out.Error, out.SeqContext = cut.Detail(cfg.SeqContext, out.FitContext), cfg.SeqContext
	}
	return pipeline.Outcome{Output: out, Tokens: res.GeneratedTokens(), PromptTokens: res.PromptTokens}
}
