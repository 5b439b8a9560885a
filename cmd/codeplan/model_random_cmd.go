package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/randmodel"
)

// modelRandomCommand is `codeplan model random`: random-weight models of
// real shapes, for timing without a download (issue 15).
func modelRandomCommand() *cli.Command {
	return &cli.Command{
		Name:  "random",
		Usage: "write a random-weight model of a real shape (llama3-8b, mistral-7b, 1b) for timing",
		Description: `Writes a llama-architecture GGUF with random weights and the exact shape of a
real model, streamed to disk (memory stays small even for 8B). Random weights
run exactly as fast as real ones, so 'codeplan bench' on such a model with a
fixed --tg measures the real model's speed; the text it writes is gibberish.

Shapes: llama3-8b (32 layers, 4096, 32/8 heads, FFN 14336, vocab 128256),
mistral-7b (vocab 32000), 1b (Llama-3.2-1B: 16 layers, 2048, FFN 8192, tied
embeddings), toy (2 layers of 64, for tests). --tokenizer DIR builds the real
vocabulary, merges, special tokens and chat template from a Hugging Face
tokenizer folder (see scripts/fetch-tokenizers.sh); without it the model gets
a byte vocabulary padded with unused tokens to the shape's size.

Example:
   codeplan model random --shape llama3-8b --type q4_0 --out /tmp/l3-8b.gguf \
       --tokenizer .cache/tokenizers/llama3`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shape", Required: true, Usage: "one of " + strings.Join(randmodel.Names(), ", ")},
			&cli.StringFlag{Name: "type", Value: "q4_0", Usage: "matrix type: f16, q8_0 or q4_0"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "write the model to `PATH`"},
			&cli.StringFlag{Name: "tokenizer", Usage: "Hugging Face tokenizer `DIR` (tokenizer.json, tokenizer_config.json; or DIR/models/)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random weights"},
			&cli.BoolFlag{Name: "zero", Usage: "all-zero matrices, left as holes in the file: a model of the real size in milliseconds and no disk space, for shape-only work (finetune --dry-run, graph checks); it computes nothing useful"},
		},
		Action: func(c *cli.Context) error {
			shape, err := randmodel.Lookup(c.String("shape"))
			if err != nil {
				return usageError{err}
			}
			typ, err := randmodel.ParseType(c.String("type"))
			if err != nil {
				return usageError{err}
			}
			opts := randmodel.Options{Type: typ, Seed: c.Uint64("seed"), Zero: c.Bool("zero")}
			if dir := c.String("tokenizer"); dir != "" {
				v, err := hfvocab.Load(dir)
				if err != nil {
					return usageError{err}
				}
				opts.Vocab = v
			}
			out := c.String("out")
			lock, err := lockOutputFlag("out", out)
			if err != nil {
				return fmt.Errorf("model random: %w", err)
			}
			defer lock.Unlock()
			start := time.Now()
			if err := randmodel.Write(out, shape, opts); err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, out)
			log.Info().Str("shape", shape.Name).Str("type", typ.String()).Int64("bytes", st.Size()).
				Dur("took", time.Since(start).Round(time.Millisecond)).Msg("random model written")
			return nil
		},
	}
}
