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
			},
			Action: func(c *cli.Context) error {
				var path string
				var err error
				if out := c.String("out"); out != "" {
					if dir := filepath.Dir(out); dir != "" {
						if err := os.MkdirAll(dir, 0o755); err != nil {
							return err
						}
					}
					path, err = out, tiny.Write(out, tiny.DefaultConfig())
				} else {
					path, err = tiny.DefaultPath()
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
				cfg := tiny.DefaultConfig()
				fmt.Printf("%s\n", path)
				log.Info().Int64("bytes", st.Size()).Int("layers", cfg.Layers).Int("embedding", cfg.Embedding).
					Int("context", cfg.ContextLength).Msg("tiny model ready")
				return nil
			},
		}},
	}
}
