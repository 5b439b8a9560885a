// Command codeplan runs the CodePlan method on local GGUF models: extract
// code-form plans from a corpus, fine-tune a LoRA adapter on them, and answer
// with a plan first (chat, generate, serve), then measure the effect (eval).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

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
	// exitInterrupted is the one status of every command stopped by SIGINT
	// or SIGTERM before it finished: "rerun the same command to resume".
	// It is what a shell reports for a process killed by SIGINT, so it
	// reads the same whether codeplan caught the signal or not, and it is
	// never 0, so that a script, Slurm or a Kubernetes Job does not count
	// the run as done.
	exitInterrupted = 130
)

// interruptedError is returned by a command that stopped early because of
// SIGINT or SIGTERM; main exits with exitInterrupted.
type interruptedError struct{ what string }

func (e interruptedError) Error() string {
	return e.what + " interrupted: rerun the same command to resume"
}

// interrupted is the error of a command stopped by a signal.
func interrupted(what string) error { return interruptedError{what} }

// signalsHandled is set by commands that handle SIGINT and SIGTERM
// themselves (they stop cleanly and return interrupted); for every other
// command, the first signal exits at once with exitInterrupted.
var signalsHandled atomic.Bool

// handleSignals claims SIGINT and SIGTERM for the running command.
func handleSignals() { signalsHandled.Store(true) }

// exitOnSignal makes an unclaimed SIGINT or SIGTERM end the process with
// exitInterrupted (a SIGTERM would otherwise kill it with status 143). What
// such commands leave behind is safe: outputs are renamed into place only
// when complete, locks are flocks, and stale temporaries are removed by the
// next run.
func exitOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range ch {
			if signalsHandled.Load() {
				continue
			}
			fmt.Fprintf(os.Stderr, "codeplan: %v: stopped before finishing; rerun the same command\n", sig)
			os.Exit(exitInterrupted)
		}
	}()
}

// checkedWriter is standard output with its first write error kept, so
// that a command whose results could not be written (a full disk, stdout
// redirected to /dev/full) fails instead of reporting success.
type checkedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// Err returns the first write error.
func (c *checkedWriter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stdout is where every command writes its results.
var stdout = &checkedWriter{w: os.Stdout}

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
   export     rows for other trainers (TRL, axolotl) in the trained layout
   lora       PEFT adapters in and out (lora import, lora export)

Every command that runs a model takes MODEL (a .gguf path) as its first
argument, or --model PATH. The word "tiny" stands for a small random-weight
model that codeplan writes itself: try any command without downloading one.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-format", Value: "", Usage: "log format on stderr: console or json (default: console on a terminal, json otherwise)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log only warnings and errors"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the command to `FILE` (go tool pprof; C code shows as cgo calls)"},
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
			if p := c.String("cpuprofile"); p != "" {
				// The one writer of every output (dataset.CreateOutput): a
				// device, FIFO or folder is refused (exit 2), so is a file
				// another run is writing, and the profile replaces the file
				// whole when the command ends.
				f, err := dataset.CreateOutput(p)
				if err != nil {
					var le *dataset.LockedError
					if errors.As(err, &le) || errors.Is(err, dataset.ErrBadOutput) {
						return fmt.Errorf("--cpuprofile: %w", err)
					}
					return usageError{fmt.Errorf("--cpuprofile: %w", err)}
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Abort()
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				cpuProfile = f
			}
			return nil
		},
		After: func(*cli.Context) error {
			if cpuProfile != nil {
				pprof.StopCPUProfile()
				err := cpuProfile.Commit()
				cpuProfile = nil
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
			}
			return nil
		},
		Writer: stdout,
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
			exportCommand(),
			loraCommand(),
			tokenizerCommand(),
			compareCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors
	}
	app.Action = unknownCommand(func() []*cli.Command { return app.Commands }, "")
	guardCommands(app.Commands)
	return app
}

// cpuProfile is the --cpuprofile file being written, committed by the
// app's After.
var cpuProfile *dataset.OutputFile

func main() {
	os.Exit(run(os.Args))
}

var setupOnce sync.Once

// setupProcess installs the process-wide handlers once.
func setupProcess() {
	setupOnce.Do(func() {
		exitOnSignal()
		dataset.StaleNotice = func(path string, pid int, size int64) {
			if pid == 0 {
				log.Warn().Str("file", path).Int64("bytes", size).Msg("removed a temporary file left by a killed run of an older codeplan (untouched for over an hour)")
				return
			}
			log.Warn().Str("file", path).Int("pid", pid).Int64("bytes", size).Msg("removed a temporary file left by a run that was killed (its pid is no longer running)")
		}
	})
}

// run executes the CLI and maps errors to exit codes.
func run(args []string) int {
	setupProcess()
	signalsHandled.Store(false)
	app := newApp()
	stdout.mu.Lock()
	stdout.err = nil
	stdout.mu.Unlock()
	err := app.Run(interspersed(app, args))
	if err == nil && stdout.Err() != nil {
		err = fmt.Errorf("cannot write the results to standard output: %w", stdout.Err())
	}
	if err == nil {
		return 0
	}
	if topic, ok := strings.CutPrefix(err.Error(), "No help topic for '"); ok {
		// "codeplan help extrct": urfave/cli's exit 3, made a usage error
		// that suggests the nearest command, as for "codeplan extrct".
		err = unknownCommandError(app.Commands, "", strings.TrimSuffix(topic, "'"))
	}
	code := exitRuntime
	var ue usageError
	var re *dataset.RowError
	var ec cli.ExitCoder
	var ie interruptedError
	switch {
	case errors.As(err, &ie):
		code = exitInterrupted
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
	if code == exitInterrupted && logReady {
		log.Warn().Msg(err.Error())
	} else if logReady {
		log.Error().Msg(err.Error())
	} else {
		fmt.Fprintln(os.Stderr, "codeplan:", err)
	}
	return code
}

// lockOutputFlag takes the output lock of the file a --flag names (see
// dataset.LockOutput): a device, FIFO or folder there is refused (exit 2),
// and so is a file that another codeplan run is writing (exit 1).
func lockOutputFlag(flag, path string) (*dataset.Lock, error) {
	l, err := dataset.LockOutput(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return l, nil
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
