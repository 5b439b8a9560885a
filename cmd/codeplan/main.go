// Command codeplan runs the CodePlan method on local GGUF models: extract
// code-form plans from a corpus, fine-tune a LoRA adapter on them, and answer
// with a plan first (chat, generate, serve), then measure the effect (eval).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/logging"
	"github.com/codeplan-dev/codeplan/internal/progress"
	"github.com/codeplan-dev/codeplan/internal/version"
	"github.com/codeplan-dev/codeplan/llama"
)

// log is the process logger, configured from the global flags in before().
var log = zerolog.Nop()

// logReady is false until the global flags configured log; errors before
// that (bad global flags) are printed plainly.
var logReady bool

// Exit codes, as documented in the README ("Command-line conventions").
const (
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors caused by bad flags or bad input (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "codeplan",
		Usage:   "code-form planning for local LLMs: extract plans, fine-tune, answer plan-first, evaluate",
		Version: version.String(),
		Description: `CodePlan (ICLR 2025) makes a model write a short Python-like plan before its answer.
codeplan runs the whole loop on your hardware with llama.cpp:

   extract    turn (prompt, response) pairs into (prompt, plan, response) rows
   finetune   train a LoRA adapter on those rows (prompt -> plan -> response)
   chat       talk to a model that plans first
   generate   batch two-phase generation over a JSONL file
   serve      an OpenAI-compatible server with plan-first answers
   eval       compare direct, natural-language-plan and code-plan answering

Every command that runs a model takes MODEL (a .gguf path) as its first
argument, or --model PATH. The word "tiny" stands for a small random-weight
model that codeplan writes itself: try any command without downloading one.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-format", Value: "", Usage: "log format on stderr: console or json (default: console on a terminal, json otherwise)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log only warnings and errors"},
		},
		Before: func(c *cli.Context) error {
			l, err := logging.Setup(progress.LogWriter(os.Stderr), c.String("log-format"), c.String("log-level"), c.Bool("quiet"))
			if err != nil {
				return usageError{err}
			}
			log = l
			logReady = true
			llama.SetLogHandler(func(level llama.LogLevel, msg string) {
				// llama.cpp's own chatter is debug detail: failures reach the
				// user as Go errors with the C side's message attached.
				log.Debug().Str("from", "llama.cpp").Msg(msg)
			})
			return nil
		},
		Commands: []*cli.Command{
			modelCommand(),
			infoCommand(),
			extractCommand(),
			mergeCommand(),
			finetuneCommand(),
			chatCommand(),
			generateCommand(),
			serveCommand(),
			evalCommand(),
			benchCommand(),
			perplexityCommand(),
			synthCommand(),
			reportCommand(),
			tokenizerCommand(),
			compareCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors
	}
	guardCommands(app.Commands)
	return app
}

func main() {
	os.Exit(run(os.Args))
}

// run executes the CLI and maps errors to exit codes.
func run(args []string) int {
	app := newApp()
	err := app.Run(interspersed(app, args))
	if err == nil {
		return 0
	}
	code := exitRuntime
	var ue usageError
	var re *dataset.RowError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ue), errors.As(err, &re):
		code = exitUsage
	case errors.Is(err, dataset.ErrBadInput), errors.Is(err, dataset.ErrBadOutput):
		// Unusable input or output files are the user's to fix, like flags.
		code = exitUsage
	case errors.As(err, &ec):
		code = ec.ExitCode()
	case isFlagError(err):
		code = exitUsage
	}
	if logReady {
		log.Error().Msg(err.Error())
	} else {
		fmt.Fprintln(os.Stderr, "codeplan:", err)
	}
	return code
}

// isFlagError recognises urfave/cli's parse errors (unknown flag, bad value).
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"flag provided but not defined", "invalid value", "Required flag", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
