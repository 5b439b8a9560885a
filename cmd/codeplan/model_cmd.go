package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama/hfvocab"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func modelCommand() *cli.Command {
	return &cli.Command{
		Name:  "model",
		Usage: "manage models (the built-in tiny test model, new models for training from scratch)",
		Subcommands: []*cli.Command{{
			Name:  "tiny",
			Usage: "write (or find cached) the tiny random-weight llama model and print its path",
			Description: `The tiny model is a 2-layer llama-architecture GGUF with a byte-level
vocabulary and deterministic random weights (~0.5 MB, written in milliseconds).
Its output is gibberish; it exists so that every command, test and demo runs
without downloading a real model. Pass "tiny" wherever a MODEL is expected.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "output", Aliases: []string{"out"}, Usage: "write the model to `PATH` instead of the user cache"},
				&cli.BoolFlag{Name: "print-path", Usage: "print only the path (for scripts)"},
				&cli.StringFlag{Name: "size", Value: "tiny", Usage: "tiny (0.5 MB, for tests) or small (104 MB: 8 layers of 512, a stand-in for timing batching with 'codeplan bench')"},
			},
			Action: func(c *cli.Context) error {
				cfg := tiny.DefaultConfig()
				switch c.String("size") {
				case "tiny":
				case "small":
					cfg.Embedding, cfg.Heads, cfg.KVHeads, cfg.FeedForward, cfg.Layers = 512, 8, 8, 1408, 8
				default:
					return usagef("model tiny: --size %q: want tiny or small", c.String("size"))
				}
				var path string
				var err error
				if out := c.String("output"); out != "" {
					lock, lerr := lockOutputFlag("output", out)
					if lerr != nil {
						return fmt.Errorf("model tiny: %w", lerr)
					}
					defer lock.Unlock()
					path, err = out, tiny.Write(out, cfg)
				} else {
					path, err = tiny.Path(cfg)
				}
				if err != nil {
					return err
				}
				if c.Bool("print-path") {
					fmt.Fprintln(stdout, path)
					return nil
				}
				st, err := os.Stat(path)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\n", path)
				log.Info().Int64("bytes", st.Size()).Int("layers", cfg.Layers).Int("embedding", cfg.Embedding).
					Int("context", cfg.ContextLength).Msg("tiny model ready")
				return nil
			},
		}, modelInitCommand(), modelRandomCommand(), modelExportHFCommand(), modelLogitsCommand()},
	}
}

func modelInitCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a new llama-architecture model initialised for training from scratch",
		Description: fmt.Sprintf(`Writes an F32 GGUF of the given shape for 'codeplan finetune --full':
weights normal(0, %g), the residual output projections (attn_output, ffn_down)
normal(0, %g/sqrt(2*layers)) as in GPT-2, RMSNorm weights 1. The vocabulary is
byte-level (259 tokens: the 256 bytes plus <|endoftext|>, <|im_start|> and
<|im_end|> as single control tokens) with the ChatML chat template, so chat
formatting, tokenisation and stop strings work as with a released model.
--tokenizer DIR uses a Hugging Face tokenizer folder instead (for example one
written by 'codeplan tokenizer train'). Same flags, same bytes. The output and input embeddings are separate unless
--tied.

Example:
   codeplan model init --output fresh.gguf --layers 4 --embd 256 --heads 4 --ff 768 --ctx 1024 --seed 1`, tiny.InitStd, tiny.InitStd),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "GGUF `PATH` to write (refused if it exists, unless --force)"},
			&cli.IntFlag{Name: "layers", Usage: "transformer blocks `L`"},
			&cli.IntFlag{Name: "embd", Usage: "hidden size `E` (a multiple of --heads; E/heads even)"},
			&cli.IntFlag{Name: "heads", Usage: "attention heads `H`"},
			&cli.IntFlag{Name: "kv-heads", Usage: "key/value heads `G` (H a multiple of G; default H)"},
			&cli.IntFlag{Name: "ff", Usage: "feed-forward hidden size `F`"},
			&cli.IntFlag{Name: "ctx", Value: 2048, Usage: "context length `N` written to the model"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the initial weights"},
			&cli.BoolFlag{Name: "tied", Usage: "tie the output matrix to the token embedding (no output.weight)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite --output if it exists"},
			&cli.StringFlag{Name: "tokenizer", Usage: "Hugging Face tokenizer `DIR` (e.g. from 'codeplan tokenizer train') instead of the byte-level vocabulary"},
		},
		Action: runModelInit,
	}
}

func runModelInit(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("model init: unexpected argument %q (the output is --output)", c.Args().First())
	}
	out := c.String("output")
	if out == "" {
		return usagef("model init: --output is required")
	}
	for _, name := range []string{"layers", "embd", "heads", "ff"} {
		if !c.IsSet(name) {
			return usagef("model init: --%s is required", name)
		}
	}
	cfg := tiny.Config{Layers: c.Int("layers"), Embedding: c.Int("embd"), Heads: c.Int("heads"), KVHeads: c.Int("kv-heads"),
		FeedForward: c.Int("ff"), ContextLength: c.Int("ctx"), Seed: c.Uint64("seed")}
	if !c.IsSet("kv-heads") {
		cfg.KVHeads = cfg.Heads
	}
	opts := tiny.InitOptions{Tied: c.Bool("tied")}
	if dir := c.String("tokenizer"); dir != "" {
		v, err := hfvocab.Load(dir)
		if err != nil {
			return usagef("model init: --tokenizer: %v", err)
		}
		opts.Vocab, cfg.Vocab = v, v.Len()
	}
	lock, err := lockOutputFlag("output", out)
	if err != nil {
		return fmt.Errorf("model init: %w", err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(out); err == nil && !c.Bool("force") {
		return usagef("model init: %s exists; pass --force to overwrite it", out)
	}
	if err := tiny.WriteInit(out, cfg, opts); err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "tiny: config "); ok {
			// name the flags, not the Go fields
			flags := strings.NewReplacer("KVHeads", "--kv-heads", "Heads", "--heads", "Embedding", "--embd",
				"FeedForward", "--ff", "Layers", "--layers", "ContextLength", "--ctx")
			if strings.HasPrefix(msg, "has ") {
				msg = "the model " + msg
			}
			return usagef("model init: %s", flags.Replace(msg))
		}
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, out)
	log.Info().Str("path", out).Int64("bytes", st.Size()).Int("params", tiny.InitParams(cfg, opts)).Int("layers", cfg.Layers).
		Int("embedding", cfg.Embedding).Int("heads", cfg.Heads).Int("kv_heads", cfg.KVHeads).Int("ff", cfg.FeedForward).
		Int("context", cfg.ContextLength).Bool("tied", opts.Tied).Uint64("seed", cfg.Seed).Msg("model initialised")
	return nil
}
