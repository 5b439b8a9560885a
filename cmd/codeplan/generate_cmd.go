package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/engine"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/planner"
)

// generatedRow is one line of generate's output.
type generatedRow struct {
	ID     string `json:"id"`
	Index  int64  `json:"index"`
	Prompt string `json:"prompt"`
	inference.Answer
	Error  string `json:"error,omitempty"`
	Source string `json:"source,omitempty"`
	Model  string `json:"model,omitempty"`
	LoRA   string `json:"lora,omitempty"`
}

// answerFlags are the mode and generation-limit flags of chat, generate,
// serve and eval.
func answerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "codeplan", Usage: "direct, nlplan (natural-language plan first) or codeplan (code-form plan first)"},
		&cli.StringFlag{Name: "format", Value: "trained", Usage: "trained (the layout finetune teaches) or prompted (instructions for an untrained instruct model)"},
		&cli.StringFlag{Name: "system", Usage: "system message"},
		&cli.IntFlag{Name: "max-plan-tokens", Value: 256, Usage: "token limit of the plan"},
		&cli.IntFlag{Name: "max-tokens", Value: 512, Usage: "token limit of the answer"},
	}
}

// prompterFrom builds the planner.Prompter for the model and the flags.
func prompterFrom(c *cli.Context, l *loaded) (planner.Prompter, error) {
	mode, err := planner.ParseMode(c.String("mode"))
	if err != nil {
		return planner.Prompter{}, usageError{err}
	}
	format, err := planner.ParseFormat(c.String("format"))
	if err != nil {
		return planner.Prompter{}, usageError{err}
	}
	chat, ok := inference.Templater(l.model)
	if !ok {
		log.Warn().Msg("llama.cpp does not support this model's chat template; using ChatML")
	}
	return planner.Prompter{Mode: mode, Format: format, Chat: chat, System: c.String("system")}, nil
}

func generateCommand() *cli.Command {
	flags := append(modelFlags(8), loraFlags()...)
	flags = append(flags, answerFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "prompts: .jsonl[.gz], .json, .parquet or - for stdin (field \"prompt\", \"question\", \"instruction\", chat \"messages\", or --prompt-field)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "answers, JSONL `PATH` (appended to; a rerun resumes)"},
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
same command after an interruption to resume.

Example:
   codeplan generate model.gguf --lora codeplan-lora.gguf --input prompts.jsonl --output answers.jsonl --parallel 8`,
		Flags: flags,
		Action: func(c *cli.Context) error {
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
			l, err := openModel(c)
			if err != nil {
				return err
			}
			defer l.Close()
			p, err := prompterFrom(c, l)
			if err != nil {
				return err
			}
			eng, err := engine.New(l.ctx, engine.Options{Parallel: c.Int("parallel")})
			if err != nil {
				return err
			}
			defer eng.Close()
			settings := inference.Settings{MaxPlanTokens: c.Int("max-plan-tokens"), MaxTokens: c.Int("max-tokens"), Sampling: samplingFrom(c)}
			model, lora := filepath.Base(l.path), ""
			if l.adapter != nil {
				lora = filepath.Base(l.adapter.Path())
			}
			process := func(ctx context.Context, row dataset.Row) pipeline.Outcome {
				out := generatedRow{ID: row.ID, Index: row.Index, Prompt: row.Prompt, Source: row.Source, Model: model, LoRA: lora}
				req, err := inference.Request(p, settings, nil, row.Prompt, nil)
				if err != nil {
					return pipeline.Outcome{Err: err}
				}
				req.ID = row.ID
				res, err := eng.Generate(ctx, req)
				out.Answer = inference.FromResult(p.Mode, res)
				if errors.Is(err, engine.ErrPromptTooLong) {
					// Written with its error, so the output has a row for every
					// prompt and a rerun does not retry it forever.
					out.Error = err.Error()
					return pipeline.Outcome{Output: out}
				}
				if err != nil {
					return pipeline.Outcome{Err: err}
				}
				return pipeline.Outcome{Output: out, Tokens: res.GeneratedTokens(), PromptTokens: res.PromptTokens}
			}
			soft, hard, stop := interruptContexts()
			defer stop()
			st, err := pipeline.Run(soft, hard, pipeline.Job{
				Name: "generate", Input: c.String("input"), Output: c.String("output"), Shard: shard, Limit: c.Int64("limit"),
				Read:    dataset.ReadOptions{PromptField: c.String("prompt-field"), IDField: c.String("id-field"), SkipBad: c.Bool("skip-bad"), PromptOnly: true},
				Workers: 2 * eng.Parallel(), Process: process, Logger: log, Progress: true,
			})
			printPipelineSummary("generate", st, c.String("output"))
			if err == nil && st.Failed > 0 {
				err = fmt.Errorf("%d rows failed (see the warnings above); rerun the same command to retry them", st.Failed)
			}
			return err
		},
	}
}

func printPipelineSummary(name string, st pipeline.Stats, output string) {
	w := os.Stdout
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
