package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/synth"
)

func synthCommand() *cli.Command {
	return &cli.Command{
		Name:  "synth",
		Usage: "write synthetic training/test rows with code plans, natural-language plans and worked solutions",
		Description: `Each row is {id, kind, k, steps, question, prompt, plan, nl_plan, control_plan,
response, answer, answer_kind}: a problem from the synthetic families (arith,
list, string, order, truth; hops and branch: facts about people followed k
hops, or an if/else over two k-hop paths) with k reasoning steps; plan is
Python-like pseudocode of its steps (never their results), nl_plan the same
steps as numbered sentences, control_plan the plan with its names, relations
and numbers masked, response a worked solution ending in "The answer is X."
The file feeds both
'codeplan finetune' (prompt + plan or nl_plan + response; --mode picks which)
and 'codeplan eval --bench FILE' (question, answer, answer_kind, steps) without
field flags.

Rows depend only on the flags (and the --exclude files). For separate splits use
different seeds and --exclude the earlier splits, so that no prompt is shared:

   codeplan synth --seed 1 --n 200 --output train.jsonl
   codeplan synth --seed 2 --n 50 --exclude train.jsonl --output val.jsonl
   codeplan synth --seed 3 --n 100 --exclude train.jsonl --exclude val.jsonl --output test.jsonl`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kinds", Value: "arith,list,string,order,truth", Usage: "problem families, comma-separated: arith, list, string (or \"text\"), order, truth, hops, branch"},
			&cli.StringFlag{Name: "steps", Value: "1-6", Usage: "step counts, e.g. 1-6 or 1,2,4"},
			&cli.IntFlag{Name: "n", Value: 100, Usage: "rows per family and step count"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "generator seed"},
			&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "output JSONL `PATH` (\"-\" = stdout)", Required: true},
			&cli.StringSliceFlag{Name: "exclude", Usage: "JSONL `FILE` of rows whose prompts must not appear (repeatable)"},
		},
		Action: runSynth,
	}
}

// parseSynthKinds turns "arith,text" into kinds; "text" names synth.String
// as in the eval benchmark name synth-text.
func parseSynthKinds(s string) ([]synth.Kind, error) {
	var out []synth.Kind
	for _, part := range strings.Split(s, ",") {
		if strings.EqualFold(strings.TrimSpace(part), "text") {
			part = string(synth.String)
		}
		k, err := synth.ParseKind(part)
		if err != nil {
			return nil, err
		}
		for _, seen := range out {
			if seen == k {
				return nil, fmt.Errorf("kind %s given twice", k)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

func runSynth(c *cli.Context) error {
	kinds, err := parseSynthKinds(c.String("kinds"))
	if err != nil {
		return usagef("synth: --kinds: %v", err)
	}
	steps, err := synth.ParseSteps(c.String("steps"))
	if err != nil {
		return usagef("synth: --steps: %v", err)
	}
	if err := synth.Validate(steps, kinds); err != nil {
		return usagef("synth: %v", err)
	}
	if c.Int("n") < 1 {
		return usagef("synth: --n must be at least 1")
	}
	exclude := map[string]bool{}
	for _, path := range c.StringSlice("exclude") {
		if err := readPrompts(path, exclude); err != nil {
			return usagef("synth: --exclude: %v", err)
		}
	}
	rows, err := synth.Rows(synth.RowsOptions{
		Seed: c.Int64("seed"), N: c.Int("n"), Steps: steps, Kinds: kinds, Exclude: exclude,
	})
	if err != nil {
		return err
	}
	out := c.String("output")
	if out == "-" {
		return writeSynthRows(stdout, rows)
	}
	// Written beside the target and renamed, so an interrupted run never
	// leaves a half file that a resumable script would take as finished;
	// a device or FIFO as --output is refused (exit 2), and a file another
	// run is writing is left alone.
	if err := dataset.WriteOutput(out, func(w io.Writer) error { return writeSynthRows(w, rows) }); err != nil {
		return fmt.Errorf("synth: --output: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "synth: wrote %d rows (%d kinds x %d step counts x %d, seed %d, %d prompts excluded) to %s\n",
		len(rows), len(kinds), len(steps), c.Int("n"), c.Int64("seed"), len(exclude), out)
	return nil
}

func writeSynthRows(w io.Writer, rows []synth.Row) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// readPrompts adds the "prompt" of every row of a JSONL file to set.
func readPrompts(path string, set map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if !gjson.Valid(text) {
			return fmt.Errorf("%s:%d: invalid JSON", path, line)
		}
		p := gjson.Get(text, "prompt")
		if p.Type != gjson.String {
			return fmt.Errorf("%s:%d: no \"prompt\" string", path, line)
		}
		set[p.Str] = true
	}
	return sc.Err()
}
