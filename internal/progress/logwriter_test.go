package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the reporter and the log writer.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogWriterPrintsAboveTheBar checks that a log line written while a bar
// is on screen clears the bar's line first and redraws the bar after it,
// so the log line stands alone and the bar stays last.
func TestLogWriterPrintsAboveTheBar(t *testing.T) {
	var out lockedBuffer
	clock := newFakeClock()
	r := New(Options{Out: &out, Total: 10, Mode: ModeTerminal, Now: clock.Now, NoBackground: true, Width: func() int { return 60 }})
	r.Advance(3)
	logs := LogWriter(&out)
	before := len(out.String())
	if _, err := logs.Write([]byte("12:00:00 INF something happened\n")); err != nil {
		t.Fatal(err)
	}
	got := out.String()[before:]
	if !strings.HasPrefix(got, "\r\x1b[K12:00:00 INF something happened\n") {
		t.Fatalf("the bar's line was not cleared before the log line: %q", got)
	}
	if rest := strings.TrimPrefix(got, "\r\x1b[K12:00:00 INF something happened\n"); !strings.Contains(rest, "3/10") {
		t.Fatalf("the bar was not redrawn below the log line: %q", rest)
	}
	r.Finish()
	// With no bar on screen, writes pass through unchanged.
	before = len(out.String())
	logs.Write([]byte("after\n"))
	if got := out.String()[before:]; got != "after\n" {
		t.Fatalf("write without a bar = %q", got)
	}
	clock.Advance(time.Second)
}

// TestLogWriterLogMode checks that a reporter in log mode does not take the
// terminal slot: log lines pass through untouched.
func TestLogWriterLogMode(t *testing.T) {
	var out lockedBuffer
	r := New(Options{Out: &out, Total: 10, Mode: ModeLog, NoBackground: true})
	defer r.Finish()
	before := len(out.String())
	LogWriter(&out).Write([]byte("x\n"))
	if got := out.String()[before:]; got != "x\n" {
		t.Fatalf("got %q", got)
	}
}
