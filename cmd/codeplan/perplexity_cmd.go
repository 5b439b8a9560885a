package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/loglik"
	"github.com/codeplan-dev/codeplan/perplexity"
	"github.com/codeplan-dev/codeplan/planner"
)

// perplexityRow is one line of perplexity's per-row output.
type perplexityRow = perplexity.Row

func perplexityCommand() *cli.Command {
	flags := append(modelFlags(4), loraFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "rows: .jsonl[.gz], .json, .parquet or - for stdin"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "per-row results, JSONL `PATH` (default: stdout, with the summary on stderr)"},
		drainFlag(),
		&cli.StringFlag{Name: "text-field", Value: "text", Usage: "gjson `PATH` of the text to score from its start"},
		&cli.StringFlag{Name: "prompt-field", Usage: "gjson `PATH` of the prompt (with --response-field; default: auto-detect)"},
		&cli.StringFlag{Name: "response-field", Usage: "score this response (gjson `PATH`) given the row's prompt in the model's chat template, instead of --text-field"},
		&cli.StringFlag{Name: "id-field", Usage: "gjson `PATH` of a row id (default: \"id\", else a hash)"},
		&cli.StringFlag{Name: "system", Usage: "system message before the prompt (with --response-field)"},
		&cli.StringFlag{Name: "plan-field", Usage: "gjson `PATH` of each row's plan: with --response-field and a plan mode, the response is scored given prompt and plan, as a plan-trained model saw them"},
		&cli.StringFlag{Name: "mode", Value: Auto, Usage: "with --response-field: the layout's mode, direct, nlplan or codeplan (auto: what the adapter or fine-tuned model records, else direct)"},
		&cli.StringFlag{Name: "format", Value: Auto, Usage: "with --response-field: " + formatUsage + " (auto without a record: trained, the plain chat layout)"},
		&cli.IntFlag{Name: "chunk", Usage: "score like llama.cpp's llama-perplexity -c `N`: cut each text into chunks of N tokens (BOS first when the model adds one), score only the second half of each chunk"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "count and skip malformed rows and rows that cannot be scored (too short, too long) instead of stopping at the first"},
		&cli.Int64Flag{Name: "limit", Usage: "score at most `N` rows"},
	)
	return &cli.Command{
		Name:      "perplexity",
		Usage:     "per-row and overall perplexity of texts, or of responses given their prompts",
		ArgsUsage: "MODEL.gguf",
		Description: `Scores every row by prompt processing only (nothing is generated) and writes one
JSON line per row: id, scored tokens, summed log-likelihood (nats), mean log-prob
per token and perplexity = exp(-mean). The summary gives the perplexity over all
tokens of all rows.

By default the text in --text-field is scored from its start (its first token, BOS
on models that add one, is context). With --response-field, the response is scored
given its prompt rendered in the model's chat template (a user turn, then the
assistant header): the perplexity a fine-tuned model assigns to its targets.

--chunk N reproduces llama.cpp's llama-perplexity -c N on the same text, to compare
numbers: chunks of N tokens, the second half of each scored. A row shorter than N
tokens has no chunk and is skipped. Each sequence holds --ctx / --parallel tokens;
a row longer than that is an error naming the row (raise --ctx or use --chunk), or,
with --skip-bad, is written with its error and counted as skipped.

A model fine-tuned by codeplan finetune in a plan mode saw each response after its
prompt and plan: --mode/--format default to what it records, and --plan-field names
the plan, so the score is of the layout it was trained on. The summary says which
layout was scored.

With --output FILE the run resumes like extract: Ctrl-C finishes the rows in flight,
kill -9 loses nothing, and a rerun scores only the rows not yet in FILE; the summary
covers every row of FILE.

Examples:
   codeplan perplexity model.gguf --input wiki.jsonl --output ppl.jsonl
   codeplan perplexity model.gguf --lora codeplan-lora.gguf --input plans.jsonl --response-field response
   codeplan perplexity model.gguf --input one-text.jsonl --chunk 512 --ctx 2048   # like llama-perplexity -c 512`,
		Flags:  flags,
		Action: perplexityAction,
	}
}

func perplexityAction(c *cli.Context) (err error) {
	input := c.String("input")
	if input == "" {
		return usagef("perplexity: --input is required")
	}
	chunk := c.Int("chunk")
	pair := c.IsSet("response-field")
	switch {
	case pair && c.IsSet("text-field"):
		return usagef("perplexity: --text-field and --response-field exclude each other (score a text, or a response given its prompt)")
	case pair && chunk > 0:
		return usagef("perplexity: --chunk scores plain texts; it does not apply to --response-field")
	case c.IsSet("chunk") && chunk < 4:
		return usagef("perplexity: --chunk %d: want at least 4 tokens", chunk)
	case !pair && (c.IsSet("plan-field") || c.IsSet("mode") || c.IsSet("format")):
		return usagef("perplexity: --plan-field, --mode and --format choose the layout of --response-field; they do not apply to a plain text")
	}
	read := dataset.ReadOptions{IDField: c.String("id-field"), SkipBad: c.Bool("skip-bad")}
	if pair {
		read.PromptField, read.ResponseField = c.String("prompt-field"), c.String("response-field")
	} else {
		read.PromptField, read.PromptOnly = c.String("text-field"), true
	}
	output := c.String("output")
	if output == "" {
		output = dataset.Stdin
	}
	if output != dataset.Stdin {
		if a, err := os.Stat(input); err == nil {
			if b, err := os.Stat(output); err == nil && os.SameFile(a, b) {
				return usagef("perplexity: --output %s is the input file: it would be overwritten", output)
			}
		}
	}
	key, _, err := modelKey(c)
	if err != nil {
		return err
	}
	cfg := perplexity.Config{
		Input: input, Read: read, Output: output, Limit: c.Int64("limit"), Pair: pair, Chunk: chunk,
		SkipBad: c.Bool("skip-bad"), ModelKey: key, Logger: log, Progress: output != dataset.Stdin,
	}
	if pair {
		if cfg.Prompter, cfg.PlanField, err = perplexityLayout(c); err != nil {
			return err
		}
	}
	_, statErr := os.Stat(output)
	// The input, the plans and the output are checked before the model
	// loads: a bad path or a missing field costs nothing.
	b, err := perplexity.Open(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	defer func() {
		// A run that scored nothing leaves no empty file behind.
		if st, serr := os.Stat(output); err != nil && output != dataset.Stdin && errors.Is(statErr, os.ErrNotExist) && serr == nil && st.Size() == 0 {
			os.Remove(output)
		}
	}()
	l, err := openModel(c)
	if err != nil {
		return err
	}
	defer l.Close()
	scorer, err := loglik.NewText(l.Model, l.Ctx)
	if err != nil {
		return err
	}
	defer scorer.Close()
	if chunk > scorer.Window()+1 {
		return usagef("perplexity: --chunk %d does not fit a sequence of %d tokens: raise --ctx to at least %d (it is shared by --parallel %d sequences)",
			chunk, scorer.Window(), chunk*l.Ctx.Sequences(), l.Ctx.Sequences())
	}
	cfg.Prompter.Chat = chatTemplater(l.Model)
	cfg.Sequences = l.Ctx.Sequences()
	soft, hard, stop := interruptContexts(c.Duration("drain-timeout"))
	defer stop()
	if testRowHook != nil {
		var n int64
		b.Observe(func(pipeline.Outcome) { n++; testRowHook(n, soft) })
	}
	sum, err := perplexity.RunOn(soft, hard, b, scorer, cfg)
	if err != nil {
		return err
	}
	// The summary goes to stdout (checked for write errors) beside an
	// output file, else to stderr after the rows.
	summaryOut := io.Writer(stdout)
	if output == dataset.Stdin {
		summaryOut = os.Stderr
	}
	if sum.Interrupted {
		fmt.Fprintf(summaryOut, "INTERRUPTED: rerun the same command to score the rest\n")
		if sum.Rows == 0 {
			return interrupted("perplexity")
		}
	}
	if sum.Rows == 0 {
		return usagef("perplexity: %s: no row to score", input)
	}
	model := filepath.Base(l.Path)
	if l.Adapter != nil {
		model += " + " + filepath.Base(l.Adapter.Path())
	}
	fmt.Fprintf(summaryOut, "perplexity %.4f over %d tokens of %d rows (%s; row median %.4f; %.1f tok/s)\n",
		sum.Perplexity, sum.Tokens, sum.Rows, model, sum.RowMedian, float64(sum.PromptTok)/math.Max(sum.Seconds, 1e-9))
	fmt.Fprintf(summaryOut, "scored: %s\n", sum.Layout)
	if sum.Resumed > 0 || sum.Skipped > 0 || sum.ShortOfChunk > 0 {
		fmt.Fprintf(summaryOut, "rows: %d scored this run, %d already in %s, %d skipped (could not be scored), %d shorter than a chunk\n",
			sum.Written-int64(sum.Skipped), sum.Resumed, output, sum.Skipped, sum.ShortOfChunk)
	}
	if sum.Interrupted {
		// Exit 130, like every command stopped by a signal.
		return interrupted("perplexity")
	}
	return nil
}

// perplexityLayout resolves --mode, --format and --plan-field for
// --response-field: auto is what the adapter or fine-tuned model records
// (else direct in the trained layout, the plain chat turn), and a plan
// mode needs the plan of each row.
func perplexityLayout(c *cli.Context) (planner.Prompter, string, error) {
	p := planner.Prompter{Mode: planner.Direct, Format: planner.Trained, System: c.String("system")}
	trainedMode, trainedFormat, _ := trainedAs(c)
	var err error
	switch v := c.String("mode"); {
	case v != Auto:
		if p.Mode, err = resolveMode(c, v); err != nil {
			return p, "", err
		}
	case trainedMode != "":
		if p.Mode, err = planner.ParseMode(trainedMode); err != nil {
			return p, "", usagef("perplexity: the recorded training mode: %v", err)
		}
	}
	switch v := c.String("format"); {
	case v != Auto:
		if p.Format, err = resolveFormat(c, v); err != nil {
			return p, "", err
		}
	case trainedFormat != "":
		if p.Format, err = planner.ParseFormat(trainedFormat); err != nil {
			return p, "", usagef("perplexity: the recorded training format: %v", err)
		}
	}
	plan := c.String("plan-field")
	switch {
	case p.Mode.HasPlan() && plan == "":
		return p, "", usagef("perplexity: the layout is %s mode (a plan before each response): give --plan-field PATH, the plan of each row, or --mode direct", p.Mode)
	case !p.Mode.HasPlan() && plan != "":
		return p, "", usagef("perplexity: --plan-field needs a plan mode (--mode codeplan or nlplan); the layout is direct")
	}
	return p, plan, nil
}
