package main

import (
	"errors"
	"fmt"
	"strings"

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

Accepted rows and rejected rows are merged in separate runs; every input is
checked by the shape of its rows, so a rejects file given as a results file
(or the other way round) is refused instead of mixed in. A shard that was
killed mid-write ends in a torn row: merge then fails (exit 1) naming the
file; rerun that shard, or pass --skip-bad to merge without the row.

Examples:
   codeplan merge --output plans.jsonl plans-*.jsonl
   codeplan merge --rejects-only --output rejects.jsonl rejects-*.jsonl`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "merged JSONL `PATH` (- for stdout)"},
			&cli.BoolFlag{Name: "rejects-only", Usage: "the inputs are rejects files (extract's *.rejects.jsonl)"},
			&cli.StringSliceFlag{Name: "rejects", Usage: "a shard rejects `FILE` to merge into --rejects-output (repeat the flag per file; a shell glob after it would pass only its first file)"},
			&cli.StringFlag{Name: "rejects-output", Usage: "merged rejects `PATH`"},
			&cli.BoolFlag{Name: "skip-bad", Usage: "skip unparsable lines and torn last rows instead of failing"},
		},
		Action: func(c *cli.Context) error {
			inputs := c.Args().Slice()
			if len(inputs) == 0 {
				return usagef("merge: give the shard files to merge")
			}
			if len(c.StringSlice("rejects")) > 0 && c.String("rejects-output") == "" {
				return usagef("merge: --rejects needs --rejects-output")
			}
			if c.Bool("rejects-only") && (len(c.StringSlice("rejects")) > 0 || c.String("rejects-output") != "") {
				return usagef("merge --rejects-only: give the rejects files as arguments and --output; --rejects and --rejects-output do not apply")
			}
			st, err := dataset.Merge(inputs, c.String("output"), dataset.MergeOptions{
				Rejects: c.StringSlice("rejects"), RejectsOut: c.String("rejects-output"), SkipBad: c.Bool("skip-bad"),
				InputsAreRejects: c.Bool("rejects-only"),
			})
			switch {
			case errors.Is(err, dataset.ErrTornRows):
				return fmt.Errorf("%w (--skip-bad merges without them)", err)
			case errors.Is(err, dataset.ErrBadInput) && strings.Contains(err.Error(), "is a rejected row"):
				return fmt.Errorf("%w: codeplan merge --rejects-only --output rejects.jsonl rejects-*.jsonl", err)
			case err != nil:
				return err
			}
			if st.TornLines > 0 || st.BadLines > 0 {
				log.Warn().Int64("torn_rows", st.TornLines).Strs("torn_files", st.TornFiles).Int64("bad_lines", st.BadLines).
					Msg("merged without rows that were torn or unparsable (--skip-bad); rerun their shards to redo them")
			}
			log.Info().Int("inputs", st.Inputs).Int64("rows", st.Rows).Int64("duplicates", st.Duplicates).
				Int64("rejects", st.Rejects).Int64("torn_rows", st.TornLines).Msg("merged")
			if c.String("output") != "-" {
				fmt.Fprintf(stdout, "merged %d rows from %d files into %s (%d duplicates dropped", st.Rows, st.Inputs, c.String("output"), st.Duplicates)
				if st.TornLines+st.BadLines > 0 {
					fmt.Fprintf(stdout, "; skipped %d torn rows and %d bad lines", st.TornLines, st.BadLines)
				}
				fmt.Fprintln(stdout, ")")
			}
			return nil
		},
	}
}
