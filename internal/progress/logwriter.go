package progress

import (
	"io"
	"sync"
)

// active is the terminal-mode Reporter whose line is on screen, if any. A
// process shows one bar at a time, so one slot is enough.
var (
	activeMu sync.Mutex
	active   *Reporter
)

// LogWriter wraps w (the stderr that logs go to) so that log lines never
// land inside a progress bar: while a terminal-mode Reporter is showing its
// line, each write first clears that line, then writes the log line, then
// redraws the bar below it. Without an active bar writes pass straight
// through. Each Write must be one whole log line, as zerolog's writers do.
func LogWriter(w io.Writer) io.Writer {
	return &logWriter{w: w}
}

type logWriter struct{ w io.Writer }

func (l *logWriter) Write(p []byte) (int, error) {
	activeMu.Lock()
	r := active
	activeMu.Unlock()
	if r == nil {
		return l.w.Write(p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return l.w.Write(p)
	}
	r.write("\r\x1b[K")
	n, err := l.w.Write(p)
	r.draw(r.opts.Now(), false)
	return n, err
}

// Fd returns the wrapped writer's file descriptor, so that terminal
// detection (logging.IsTerminal) sees through the wrapper; ^uintptr(0) when
// it has none.
func (l *logWriter) Fd() uintptr {
	if f, ok := l.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}
