package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/report/replication"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "compare eval results of several models (one mode each) by number of steps and problem family",
		ArgsUsage: "EVAL_DIR_OR_RESULTS.jsonl...",
		Description: `Reads the results.jsonl of each 'codeplan eval' folder given (typically one
model per mode, evaluated on the same items) and writes to --output:
report.md (accuracy by k per mode with 95% Wilson intervals; per family the
accuracy of each mode, its relative gain over direct, and both at the largest
k), accuracy_by_k.png (one line per mode with intervals) and summary.json.
The tables are also printed on stdout.

Example:
   codeplan report --output mini/report mini/eval-direct mini/eval-nlplan mini/eval-codeplan`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Required: true, Usage: "report `DIR`"},
			&cli.StringFlag{Name: "title", Value: "Accuracy by number of reasoning steps", Usage: "chart title"},
		},
		Action: runReport,
	}
}

func runReport(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("report: give at least one eval folder or results.jsonl")
	}
	var rows []evaluate.Row
	seen := map[string]string{}
	for _, arg := range c.Args().Slice() {
		path := arg
		if st, err := os.Stat(arg); err == nil && st.IsDir() {
			path = filepath.Join(arg, "results.jsonl")
		}
		rs, err := evaluate.ReadRows(path)
		if err != nil {
			return usagef("report: %v", err)
		}
		for _, r := range rs {
			// The same item in the same mode from two folders would be
			// counted twice: refuse rather than report a skewed number.
			if first, dup := seen[r.ID]; dup {
				return usagef("report: row %s is in both %s and %s", r.ID, first, path)
			}
			seen[r.ID] = path
		}
		rows = append(rows, rs...)
	}
	if len(rows) == 0 {
		return usagef("report: no result rows in %s", strings.Join(c.Args().Slice(), ", "))
	}
	s := replication.Summarize(rows)
	out := c.String("output")
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return usagef("report: --output %s is not a folder", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	if err := s.WriteMarkdown(&md); err != nil {
		return err
	}
	if err := dataset.WriteFile(filepath.Join(out, "report.md"), []byte(md.String())); err != nil {
		return err
	}
	if err := s.SaveChart(filepath.Join(out, "accuracy_by_k.png"), c.String("title")); err != nil {
		return err
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := dataset.WriteFile(filepath.Join(out, "summary.json"), append(js, '\n')); err != nil {
		return err
	}
	fmt.Fprint(c.App.Writer, md.String())
	return nil
}
