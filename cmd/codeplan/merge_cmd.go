package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "combine shard outputs: dedup by id, order by input position",
		ArgsUsage: "SHARD.jsonl [SHARD.jsonl ...]",
		Description: `After N workers ran 'codeplan extract --shard K/N' (or generate/eval), merge writes
one file in input order with every id once. Memory stays small: only ids and
offsets are kept, so millions of rows merge on a laptop.

Example:
   codeplan merge --output plans.jsonl plans-*.jsonl --rejects-output rejects.jsonl --rejects rejects-*.jsonl`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "merged JSONL `PATH` (- for stdout)"},
			&cli.StringSliceFlag{Name: "rejects", Usage: "shard rejects files to merge too"},
			&cli.StringFlag{Name: "rejects-output", Usage: "merged rejects `PATH`"},
			&cli.BoolFlag{Name: "skip-bad", Usage: "skip unparsable lines instead of failing"},
		},
		Action: func(c *cli.Context) error {
			inputs := c.Args().Slice()
			if len(inputs) == 0 {
				return usagef("merge: give the shard files to merge")
			}
			if len(c.StringSlice("rejects")) > 0 && c.String("rejects-output") == "" {
				return usagef("merge: --rejects needs --rejects-output")
			}
			st, err := dataset.Merge(inputs, c.String("output"), dataset.MergeOptions{
				Rejects: c.StringSlice("rejects"), RejectsOut: c.String("rejects-output"), SkipBad: c.Bool("skip-bad"),
			})
			if err != nil {
				return err
			}
			log.Info().Int("inputs", st.Inputs).Int64("rows", st.Rows).Int64("duplicates", st.Duplicates).
				Int64("rejects", st.Rejects).Int64("torn_lines", st.TornLines).Msg("merged")
			if c.String("output") != "-" {
				fmt.Printf("merged %d rows from %d files into %s (%d duplicates dropped)\n", st.Rows, st.Inputs, c.String("output"), st.Duplicates)
			}
			return nil
		},
	}
}
