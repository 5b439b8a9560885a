package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/miniature"
)

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare the miniature's arms item by item (paired bootstrap, exact McNemar, plan statistics)",
		ArgsUsage: "NAME=EVAL_DIR...",
		Description: `Reads the results.jsonl of each eval folder (NAME is direct, nlplan, codeplan
or control; NAME@PCT, e.g. codeplan@25, is a learning-curve point) and the
synth rows they were evaluated on (--input), and writes --output/compare.md and
compare.json: accuracy by k with Wilson intervals; for every pair of arms the
accuracy difference with a 95% paired bootstrap interval and the exact McNemar
p-value, overall and by k (code plan vs direct, vs NL plan and vs control are
the pre-registered ones); how often generated plans equal the gold plan and
how often a response follows its own plan; the learning curves; and, with
--train and --tokenizer, the held-out loss of a prompt-blind 4-gram model of
the responses. scripts/mini-replication.sh runs it.

Example:
   codeplan compare --input val.jsonl --output cmp direct=eval-direct codeplan=eval-codeplan`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"data", "i"}, Usage: "synth rows `FILE` the arms were evaluated on"},
			&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "report `DIR`"},
			&cli.StringFlag{Name: "train", Usage: "training rows `FILE` (for the prompt-blind baseline)"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer `DIR` of the arms (for the prompt-blind baseline)"},
			&cli.StringFlag{Name: "title", Value: "CodePlan miniature: paired comparison", Usage: "report title"},
			&cli.IntFlag{Name: "resamples", Value: 10000, Usage: "bootstrap resamples"},
		},
		Action: func(c *cli.Context) error {
			if c.String("input") == "" || c.String("output") == "" {
				return usagef("compare: --input and --output are required")
			}
			for _, flag := range []string{"input", "train"} {
				if path := c.String(flag); path != "" {
					if err := dataset.CheckInputFile(path); err != nil {
						return usagef("compare: --%s: %v", flag, err)
					}
				}
			}
			if st, err := os.Stat(c.String("output")); err == nil && !st.IsDir() {
				return usagef("compare: --output %s is not a folder", c.String("output"))
			}
			if c.NArg() == 0 {
				return usagef("compare: name at least one NAME=EVAL_DIR")
			}
			if (c.String("train") == "") != (c.String("tokenizer") == "") {
				return usagef("compare: --train and --tokenizer go together (the baseline needs both)")
			}
			if c.Int("resamples") < 100 {
				return usagef("compare: --resamples %d: want at least 100", c.Int("resamples"))
			}
			md, err := miniature.Report(miniature.Options{Data: c.String("input"), Arms: c.Args().Slice(),
				Train: c.String("train"), Tokenizer: c.String("tokenizer"), Out: c.String("output"),
				Title: c.String("title"), Resamples: c.Int("resamples")})
			if err != nil {
				// Unusable inputs and outputs are dataset.ErrBadInput or
				// ErrBadOutput (exit 2); another run's lock is exit 1.
				return fmt.Errorf("compare: %w", err)
			}
			fmt.Fprint(c.App.Writer, md)
			return nil
		},
	}
}
