package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/generate"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/planner"
)

// answerFlags are generate's mode, format and generation-limit flags (chat,
// serve and eval define their own, with help worded for each).
func answerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "codeplan", Usage: "direct, nlplan (natural-language plan first), codeplan (code-form plan first) or auto (the mode the adapter or model was fine-tuned in)"},
		&cli.StringFlag{Name: "format", Value: Auto, Usage: formatUsage},
		&cli.StringFlag{Name: "system", Usage: "system message"},
		&cli.IntFlag{Name: "max-plan-tokens", Value: planner.DefaultMaxPlanTokens, Usage: "token limit of the plan"},
		&cli.IntFlag{Name: "max-tokens", Value: planner.DefaultMaxTokens, Usage: "token limit of the answer"},
	}
}

// prompterFrom builds the planner.Prompter for the model and the flags.
func prompterFrom(c *cli.Context, l *loaded) (planner.Prompter, error) {
	mode, err := resolveMode(c, c.String("mode"))
	if err != nil {
		return planner.Prompter{}, err
	}
	format, err := resolveFormat(c, c.String("format"))
	if err != nil {
		return planner.Prompter{}, err
	}
	return planner.Prompter{Mode: mode, Format: format, Chat: chatTemplater(l.Model), System: c.String("system")}, nil
}

// chatTemplater is the model's chat template, or ChatML with a warning
// when llama.cpp does not support the model's own.
func chatTemplater(m *llama.Model) planner.ChatTemplater {
	chat, ok := chattemplate.For(m)
	if !ok {
		log.Warn().Str("model", filepath.Base(m.Path())).Msg("llama.cpp does not support this model's chat template; using ChatML, which may not match how the model was trained")
	}
	return chat
}

func generateCommand() *cli.Command {
	flags := append(modelFlags(8), loraFlags()...)
	flags = append(flags, answerFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "prompts: .jsonl[.gz], .json, .parquet or - for stdin (field \"prompt\", \"question\", \"instruction\", chat \"messages\", or --prompt-field)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "answers, JSONL `PATH` (appended to; a rerun resumes)"},
		drainFlag(),
		&cli.StringFlag{Name: "prompt-field", Usage: "gjson `PATH` of the prompt in each row"},
		&cli.StringFlag{Name: "id-field", Usage: "gjson `PATH` of a row id (default: \"id\", else a hash of the prompt)"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "count and skip malformed rows instead of stopping at the first"},
		&cli.StringFlag{Name: "shard", Usage: "process only shard `K/N` (1-based, stable by row id)"},
		&cli.Int64Flag{Name: "limit", Usage: "answer at most `N` new prompts"},
	)
	return &cli.Command{
		Name:      "generate",
		Usage:     "answer a file of prompts plan-first (batch, resumable)",
		ArgsUsage: "MODEL.gguf",
		Description: `Each prompt is answered in --mode: codeplan writes a code-form plan and then the
answer that follows it (two phases on one sequence, no recomputation), nlplan does
the same with a natural-language plan, direct answers at once. Rows run --parallel
at a time with continuous batching. The output holds one JSON row per prompt
(id, index, prompt, mode, plan, answer, finish reasons, token counts); rerun the
same command after an interruption to resume. Every row records the settings that
made it (model, adapter, mode, format, token limits, sampling): a rerun into the
same --output with other settings is refused, naming both. The input and the
output are checked before the model loads.

Example:
   codeplan generate model.gguf --lora codeplan-lora.gguf --input prompts.jsonl --output answers.jsonl --parallel 8`,
		Flags:  flags,
		Action: runGenerate,
	}
}

// runGenerate checks the input and the output before it loads the model,
// so that bad files cost nothing.
func runGenerate(c *cli.Context) error {
	if c.String("input") == "" || c.String("output") == "" {
		return usagef("generate: --input and --output are required")
	}
	if c.String("output") == "-" {
		return usagef("generate: --output must be a file: resuming needs to read it back")
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usageError{err}
	}
	mode, err := resolveMode(c, c.String("mode"))
	if err != nil {
		return err
	}
	format, err := resolveFormat(c, c.String("format"))
	if err != nil {
		return err
	}
	key, opts, err := modelKey(c)
	if err != nil {
		return err
	}
	// A sequence's context: prompts too long for it are written with an
	// error, and a rerun with a larger --ctx redoes them.
	seqContext, err := opts.SeqContext(0)
	if err != nil {
		return usageError{err}
	}
	settings := inference.Settings{MaxPlanTokens: c.Int("max-plan-tokens"), MaxTokens: c.Int("max-tokens"), Sampling: samplingFrom(c)}
	cfg := generate.Config{
		SeqContext: seqContext,
		Input:      c.String("input"), Output: c.String("output"), Shard: shard, Limit: c.Int64("limit"),
		Read:     dataset.ReadOptions{PromptField: c.String("prompt-field"), IDField: c.String("id-field"), SkipBad: c.Bool("skip-bad")},
		Prompter: planner.Prompter{Mode: mode, Format: format, System: c.String("system")},
		Settings: settings, ModelKey: key, Logger: log, Progress: true,
	}
	// Every row is read once before the model loads: a malformed row
	// deep in the file is found now, not after hours of generation.
	if job := cfg.Job(); job.Rows == nil {
		if err := dataset.Validate(job.Input, job.Read); err != nil {
			return err
		}
	}
	b, err := pipeline.Open(cfg.Job())
	if err != nil {
		return err
	}
	defer b.Close()

	l, eng, err := engineFor(c)
	if err != nil {
		return err
	}
	defer l.Close()
	defer eng.Close()
	if cfg.Prompter, err = prompterFrom(c, l); err != nil {
		return err
	}
	cfg.Workers = 2 * eng.Parallel() // keep the queue full while results are written
	// Rows record what a sequence really held: llama.cpp pads a sequence's
	// share up to a multiple of 256, and the job's Redo (fixed at Open, on
	// the planned size) must not redo them at a --ctx that holds no more.
	cfg.SeqContext, cfg.ContextFor = max(cfg.SeqContext, eng.SlotContext()), eng.ContextFor
	b.CountTokensLive(func() int64 { return eng.Stats().GeneratedTokens })
	cfg.Model, cfg.LoRA = l.Names()
	// Rows the context could not hold are written with an error (the
	// library's words); the way out is in flags, so it is said here.
	var tooLong, cut cutRows
	b.Observe(func(o pipeline.Outcome) {
		if r, ok := o.Output.(generate.Row); ok && r.Error != "" {
			if r.Finish == inference.FinishContextFull || r.PlanFinish == inference.FinishContextFull {
				cut.add(r.FitContext)
			} else {
				tooLong.add(0)
			}
		}
	})
	soft, hard, stop := interruptContexts(c.Duration("drain-timeout"))
	defer stop()
	if testRowHook != nil {
		var n int64
		b.Observe(func(pipeline.Outcome) { n++; testRowHook(n, soft) })
	}
	st, err := generate.RunOn(soft, hard, b, eng, cfg)
	printPipelineSummary("generate", st, cfg.Output)
	if tooLong.n > 0 {
		log.Warn().Int("rows", tooLong.n).Msg("prompts did not fit a sequence's context and were written with an error: raise --ctx or lower --parallel and rerun, which redoes exactly those rows")
	}
	if cut.n > 0 {
		fmt.Fprintf(stdout, "  context full      %d rows cut before their token limit (finish context_full, written with an error): %s\n", cut.n, cut.advice())
	}
	if err == nil && st.Failed > 0 {
		err = unfinishedRows(st.Failed, st.Interrupted)
	}
	if err == nil && st.Interrupted {
		err = interrupted("generate")
	}
	return err
}

func printPipelineSummary(name string, st pipeline.Stats, output string) {
	w := stdout
	fmt.Fprintf(w, "\n%s summary (%s)\n", name, st.Elapsed.Round(time.Millisecond))
	if st.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: rerun the same command to resume\n")
	}
	fmt.Fprintf(w, "  rows processed    %d  (written %d, failed %d)\n", st.Processed, st.Written, st.Failed)
	if st.Resumed+st.OtherShards+st.Duplicates+st.Skipped > 0 {
		fmt.Fprintf(w, "  rows not sent     already done %d, other shards %d, duplicate ids %d, malformed %d\n", st.Resumed, st.OtherShards, st.Duplicates, st.Skipped)
	}
	if st.Elapsed > 0 {
		fmt.Fprintf(w, "  throughput        %.2f rows/s, %.1f generated tok/s\n", st.RowsPerSecond(), st.TokensPerSecond())
	}
	fmt.Fprintf(w, "  output            %s\n", output)
}

// cutRows counts the rows a run wrote cut by a full context (finish
// context_full) and the --ctx that would fit them all.
type cutRows struct{ n, fit, unknown int }

func (c *cutRows) add(fit int) {
	c.n++
	if fit <= 0 {
		c.unknown++
	}
	c.fit = max(c.fit, fit)
}

// advice tells the user how to get the rows redone (generate, eval and
// extract's context_full rejects say it alike).
func (c cutRows) advice() string {
	if c.unknown == 0 && c.fit > 0 {
		return fmt.Sprintf("--ctx %d would fit them, and a rerun with it redoes them", c.fit)
	}
	return "raise --ctx or lower --parallel and rerun, which redoes them"
}
