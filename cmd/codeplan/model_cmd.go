package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func modelCommand() *cli.Command {
	return &cli.Command{
		Name:  "model",
		Usage: "manage models (the built-in tiny test model)",
		Subcommands: []*cli.Command{{
			Name:  "tiny",
			Usage: "write (or find cached) the tiny random-weight llama model and print its path",
			Description: `The tiny model is a 2-layer llama-architecture GGUF with a byte-level
vocabulary and deterministic random weights (~0.5 MB, written in milliseconds).
Its output is gibberish; it exists so that every command, test and demo runs
without downloading a real model. Pass "tiny" wherever a MODEL is expected.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Usage: "write the model to `PATH` instead of the user cache"},
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
				if out := c.String("out"); out != "" {
					if dir := filepath.Dir(out); dir != "" {
						if err := os.MkdirAll(dir, 0o755); err != nil {
							return err
						}
					}
					path, err = out, tiny.Write(out, cfg)
				} else {
					path, err = tiny.Path(cfg)
				}
				if err != nil {
					return err
				}
				if c.Bool("print-path") {
					fmt.Println(path)
					return nil
				}
				st, err := os.Stat(path)
				if err != nil {
					return err
				}
				fmt.Printf("%s\n", path)
				log.Info().Int64("bytes", st.Size()).Int("layers", cfg.Layers).Int("embedding", cfg.Embedding).
					Int("context", cfg.ContextLength).Msg("tiny model ready")
				return nil
			},
		}, modelRandomCommand()},
	}
}
