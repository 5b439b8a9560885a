// Package logging builds the zerolog logger shared by every codeplan
// command, so that all of them accept the same --log-format, --log-level and
// -q flags and print the same way.
package logging

import (
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Accepted values of the format argument of Setup.
const (
	// FormatAuto picks FormatConsole when the writer is a terminal and
	// FormatJSON otherwise, so that interactive runs are readable and runs
	// redirected to a file stay machine-parseable.
	FormatAuto = ""
	// FormatConsole prints human-readable lines ("15:04:05 INF msg k=v").
	FormatConsole = "console"
	// FormatJSON prints one JSON object per line.
	FormatJSON = "json"
)

// ConsoleTimeFormat is the time stamp layout of console output. Log lines
// of a single run rarely span days, so the date would only add noise.
const ConsoleTimeFormat = "15:04:05"

// Setup returns a logger writing to w (normally os.Stderr).
//
// format is "console", "json", or "" (also "auto") to choose console when w
// is a terminal. level is "debug", "info", "warn" (or "warning") or "error",
// case-insensitive; "" means info. quiet (the -q flag) raises the level to
// warn so that only warnings and errors are printed; it never lowers a level
// that is already stricter. Unknown values return an error naming the value
// and the accepted ones, so a typo in a flag fails loudly instead of silently
// logging at the wrong level.
func Setup(w io.Writer, format, level string, quiet bool) (zerolog.Logger, error) {
	return setup(w, format, level, quiet, IsTerminal(w))
}

// setup is Setup with the terminal decision passed in, so tests can exercise
// both branches without a real TTY.
func setup(w io.Writer, format, level string, quiet, tty bool) (zerolog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if quiet && lvl < zerolog.WarnLevel {
		lvl = zerolog.WarnLevel
	}

	switch strings.ToLower(strings.TrimSpace(format)) {
	case FormatAuto, "auto":
		if tty {
			w = consoleWriter(w, tty)
		}
	case FormatConsole:
		w = consoleWriter(w, tty)
	case FormatJSON:
		// w is used as is: zerolog writes JSON natively.
	default:
		return zerolog.Nop(), fmt.Errorf("logging: unknown log format %q (want console, json or auto)", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// consoleWriter wraps w in zerolog's human-readable writer. Colour escape
// codes are only emitted on a terminal: in a file or a pipe they are noise.
func consoleWriter(w io.Writer, tty bool) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{Out: w, TimeFormat: ConsoleTimeFormat, NoColor: !tty}
}

// ParseLevel converts a --log-level value to a zerolog level. It accepts
// debug, info, warn, warning and error in any case; "" means info.
func ParseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "", "info":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("logging: unknown log level %q (want debug, info, warn or error)", s)
}

// IsTerminal reports whether w is a file (anything with an Fd method, such as
// *os.File or progress.LogWriter's wrapper) connected to a terminal. Any
// other writer (a buffer, a pipe, a file) is not a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && f.Fd() != ^uintptr(0) && term.IsTerminal(int(f.Fd()))
}
