package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
)

func benchCommand() *cli.Command {
	flags := append(modelFlags(1), loraFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "parallels", Value: "1,2,4,8,16", Usage: "comma-separated sequence counts to measure"},
		&cli.IntFlag{Name: "pp", Value: 512, Usage: "prompt tokens per sequence"},
		&cli.IntFlag{Name: "tg", Value: 128, Usage: "generated tokens per sequence"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON rows instead of a table"},
		&cli.BoolFlag{Name: "extract-ctx", Usage: "run on the context `codeplan extract` uses at the largest of --parallels: one more sequence (the prefix cache's), each of min(4096, the model's context) tokens unless --ctx is given"},
	)
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure prompt and generation tokens/s at several --parallel values (size a run)",
		ArgsUsage: "MODEL.gguf",
		Description: `For each value P of --parallels, P sequences each process a --pp token prompt
and then generate --tg tokens together, one token per sequence per step (the
measurement of llama.cpp's batched-bench). S_PP and S_TG are tokens per second
over all sequences: pick the --parallel where S_TG stops growing for extract.

By default the context holds exactly P × (PP + TG) tokens. Attention spans
the highest used cell of each sequence's share, rounded up to 256 and capped at
the share, so a larger context can be slower for the same work: --extract-ctx
measures on the context extract would allocate instead (the header line and
the JSON's "ctx" give the context used).

Example:
   codeplan bench Meta-Llama-3-8B-Instruct.Q4_K_M.gguf --gpu --parallels 1,4,16,32`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			var ps []int
			for _, f := range strings.Split(c.String("parallels"), ",") {
				p, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || p <= 0 {
					return usagef("bench: --parallels %q: want positive integers like 1,2,4,8", c.String("parallels"))
				}
				ps = append(ps, p)
			}
			pp, tg := c.Int("pp"), c.Int("tg")
			if pp <= 0 || tg <= 0 {
				return usagef("bench: --pp and --tg must be positive")
			}
			maxP := 0
			for _, p := range ps {
				maxP = max(maxP, p)
			}
			// One context sized for the largest run; smaller runs use a subset.
			if err := c.Set("parallel", strconv.Itoa(maxP)); err != nil {
				return err
			}
			extra := 0
			if c.Bool("extract-ctx") {
				extra = 1 // extract's prefix cache; --ctx unset keeps extract's default
			} else if !c.IsSet("ctx") {
				if err := c.Set("ctx", strconv.Itoa(maxP*(pp+tg))); err != nil {
					return err
				}
			}
			l, err := openModelSeqs(c, extra)
			if err != nil {
				return err
			}
			defer l.Close()
			// A warm-up decode, so one-time allocations are not timed.
			if _, err := engine.MeasureBatched(l.Ctx, 1, min(pp, 32), 4); err != nil {
				return err
			}
			info, _ := l.Model.Info()
			if !c.Bool("json") {
				fmt.Fprintf(stdout, "model %s (%s), threads %d, ctx %d over %d sequences, %s\n\n", l.Path, info.Description, c.Int("threads"),
					l.Ctx.ContextSize(), l.Ctx.Sequences(), firstLine(llama.SystemInfo()))
				fmt.Fprintf(stdout, "|%6s |%6s |%6s |%8s |%10s |%12s |%10s |%12s |\n", "PP", "TG", "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s")
				fmt.Fprintln(stdout, "|-------|-------|-------|---------|-----------|-------------|-----------|-------------|")
			}
			if per := l.Ctx.ContextSize() / l.Ctx.Sequences(); pp+tg > per {
				return usagef("bench: --pp %d + --tg %d exceed the %d tokens each sequence of --ctx %d holds", pp, tg, per, l.Ctx.ContextSize())
			}
			enc := json.NewEncoder(stdout)
			for _, p := range ps {
				r, err := engine.MeasureBatched(l.Ctx, p, pp, tg)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					enc.Encode(map[string]any{"parallel": p, "pp": pp, "tg": tg, "ctx": l.Ctx.ContextSize(), "pp_seconds": r.PromptTime.Seconds(), "pp_tok_s": r.PromptTokensPerSecond(),
						"tg_seconds": r.GenTime.Seconds(), "tg_tok_s": r.GenTokensPerSecond()})
					continue
				}
				fmt.Fprintf(stdout, "|%6d |%6d |%6d |%8d |%10.3f |%12.1f |%10.3f |%12.1f |\n", pp, tg, p, p*(pp+tg),
					r.PromptTime.Seconds(), r.PromptTokensPerSecond(), r.GenTime.Seconds(), r.GenTokensPerSecond())
			}
			return nil
		},
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
