package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestFormatLine(t *testing.T) {
	mid := state{
		total: 10000, done: 4200, unit: "rows",
		counters: []counter{{"ok", 4100}, {"rej", 100}},
		rateName: "tok", rate: 312.4, hasRate: true,
		eta: 3*time.Minute + 12*time.Second, hasETA: true,
	}
	const midText = " 42% 4200/10000 rows  ok 4100  rej 100  312 tok/s  ETA 3m12s"

	unknown := state{done: 37, unit: "rows", counters: []counter{{"ok", 30}}, rateName: "tok", rate: 7.25, hasRate: true}
	final := state{total: 50, done: 50, unit: "rows", elapsed: 65 * time.Second, final: true}
	over := state{total: 10, done: 12, unit: "rows"}

	tests := []struct {
		name  string
		s     state
		width int
		want  string
	}{
		// 80 columns: 79 usable, the text is 60 wide, so the bar gets
		// 79-60-3 = 16, of which 42% is 6.
		{"wide", mid, 80, "[######..........] " + midText},
		// Very wide terminals cap the bar at maxBar.
		{"capped bar", mid, 200, "[################........................] " + midText},
		// Exactly room for the minimum bar.
		{"min bar", mid, len(midText) + 3 + minBar + 1, "[####......] " + midText},
		// One column less: the bar goes, the figures stay.
		{"no bar", mid, len(midText) + 3 + minBar, strings.TrimLeft(midText, " ")},
		// Narrower than the figures: cut to fit.
		{"cut", mid, 20, "42% 4200/10000 rows"},
		{"unknown total", unknown, 80, "37 rows  ok 30  7.2 tok/s"},
		{"final", final, 60, "[###############################] 100% 50/50 rows  in 1m05s"},
		{"overshoot", over, 40, "[#####################] 100% 12/10 rows"},
		{"unknown width", mid, 0, "[######..........] " + midText},
	}
	for _, tt := range tests {
		got := formatLine(tt.s, tt.width)
		if got != tt.want {
			t.Errorf("%s (width %d):\n got %q\nwant %q", tt.name, tt.width, got, tt.want)
		}
		w := tt.width
		if w <= 0 {
			w = DefaultWidth
		}
		if len(got) > w-1 {
			t.Errorf("%s: line of %d columns does not fit in %d", tt.name, len(got), w)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1400 * time.Millisecond, "1s"},
		{59 * time.Second, "59s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour + 5*time.Minute + 40*time.Second, "1h06m"},
		{maxETA, "999h00m"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestETA(t *testing.T) {
	tests := []struct {
		remaining int64
		perSec    float64
		want      time.Duration
	}{
		{5800, 100, 58 * time.Second},
		{1000, 0.5, 2000 * time.Second},
		{1, 1e-12, maxETA},
	}
	for _, tt := range tests {
		if got := eta(tt.remaining, tt.perSec); got != tt.want {
			t.Errorf("eta(%d, %v) = %v, want %v", tt.remaining, tt.perSec, got, tt.want)
		}
	}
}

// terminalReporter returns a deterministic terminal-mode reporter writing
// to buf.
func terminalReporter(clock *fakeClock, buf *bytes.Buffer, opts Options) *Reporter {
	opts.Out = buf
	opts.Mode = ModeTerminal
	opts.Now = clock.Now
	opts.Width = func() int { return 100 }
	opts.NoBackground = true
	return New(opts)
}

// lastLine returns the last redraw in terminal output.
func lastLine(out string) string {
	out = strings.TrimSuffix(out, "\n")
	i := strings.LastIndex(out, "\r")
	return strings.TrimSuffix(out[i+1:], "\x1b[K")
}

func TestETAFromRowRate(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	r := terminalReporter(clock, &buf, Options{Total: 10000})
	for range 42 {
		clock.Advance(time.Second)
		r.Advance(100)
	}
	// 4200 rows in 42 s, 5800 to go at 100/s.
	if got := lastLine(buf.String()); !strings.HasSuffix(got, "4200/10000 rows  ETA 58s") {
		t.Errorf("line %q does not end with the expected ETA", got)
	}

	// Rows slow down to 10/s; after a full ETA window the ETA must follow
	// the recent rate, not the whole-run average. (70 s rather than 60:
	// window samples lie on a 4 s grid, and at t=112 s the left edge is
	// exactly the sample at 52 s, 10 s into the slow phase.)
	for range 70 {
		clock.Advance(time.Second)
		r.Advance(10)
	}
	// 4900 done, 5100 to go at 10/s = 510 s.
	if got := lastLine(buf.String()); !strings.HasSuffix(got, "4900/10000 rows  ETA 8m30s") {
		t.Errorf("line %q does not end with the expected ETA", got)
	}
	r.Finish()
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Error("Finish did not end the line")
	}
	if got := lastLine(buf.String()); !strings.HasSuffix(got, "4900/10000 rows  in 1m52s") {
		t.Errorf("final line %q", got)
	}
}

func TestRateSmoothing(t *testing.T) {
	clock := newFakeClock()
	w := window{span: 10 * time.Second}
	var v int64
	w.add(clock.Now(), v)
	if _, ok := w.rate(clock.Now(), v); ok {
		t.Error("rate reported for an empty window")
	}
	// 100 tok/s for 10 s, then 300 tok/s for 10 s.
	for i := range 20 {
		clock.Advance(time.Second)
		if i < 10 {
			v += 100
		} else {
			v += 300
		}
		w.add(clock.Now(), v)
	}
	got, ok := w.rate(clock.Now(), v)
	if !ok || got != 300 {
		t.Errorf("rate after the change = %v, %v; want 300 (the last 10 s only)", got, ok)
	}

	// Bursts: 500 tokens every 5 s read as a steady 100/s once the window
	// holds only bursts (from the second one on).
	for i := range 6 {
		clock.Advance(5 * time.Second)
		v += 500
		w.add(clock.Now(), v)
		if got, _ := w.rate(clock.Now(), v); i >= 1 && got != 100 {
			t.Errorf("rate with bursts = %v, want 100", got)
		}
	}

	// A stall lets the rate fall instead of freezing it.
	clock.Advance(10 * time.Second)
	if got, _ := w.rate(clock.Now(), v); got != 0 {
		t.Errorf("rate after a 10 s stall = %v, want 0", got)
	}
	if n := len(w.samples); n > 18 {
		t.Errorf("window keeps %d samples; it should stay bounded", n)
	}
}

func TestManyUpdatesKeepWindowSmall(t *testing.T) {
	clock := newFakeClock()
	w := window{span: 10 * time.Second}
	for i := range 100000 {
		clock.Advance(time.Millisecond)
		w.add(clock.Now(), int64(i))
	}
	if n := len(w.samples); n > 18 {
		t.Errorf("window keeps %d samples after 100000 updates", n)
	}
}

func TestTerminalLineShowsCountersAndRate(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	r := terminalReporter(clock, &buf, Options{Total: 100, Counters: []string{"ok", "rej"}, RateCounter: "tok"})
	if got := lastLine(buf.String()); got != "[........................................]   0% 0/100 rows  ok 0  rej 0" {
		t.Errorf("initial line %q", got)
	}
	for range 5 {
		r.Advance(2)
		r.Add("ok", 1)
		r.Add("rej", 1)
		r.Add("tok", 50)
		r.Add("dup", 1) // unknown counters are shown after the listed ones
		// Render as the background refresher would, so the line shows every
		// update of this second rather than only the first one.
		clock.Advance(time.Second)
		r.tick()
	}
	want := "[####....................................]  10% 10/100 rows  ok 5  rej 5  dup 5  50 tok/s  ETA 45s"
	if got := lastLine(buf.String()); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(buf.String(), "\r") || strings.Contains(buf.String(), "\n") {
		t.Errorf("terminal output must be redraws only: %q", buf.String())
	}
}

func TestRedrawThrottled(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	r := terminalReporter(clock, &buf, Options{Total: 1000})
	// 1000 updates over one second: at most one redraw per 200 ms.
	for range 1000 {
		clock.Advance(time.Millisecond)
		r.Advance(1)
	}
	if n := strings.Count(buf.String(), "\r"); n != 6 { // initial + 5
		t.Errorf("%d redraws in one second, want 6", n)
	}
	r.Finish()
	r.Finish() // idempotent
	r.Advance(1)
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("%d newlines after Finish twice, want 1", n)
	}
}

func TestLogMode(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	r := New(Options{
		Out: &buf, Mode: ModeLog, Now: clock.Now, NoBackground: true,
		Total: 1000, Counters: []string{"ok", "rej"}, RateCounter: "tok", Message: "extract",
	})
	for range 35 {
		r.Advance(10)
		r.Add("ok", 9)
		r.Add("rej", 1)
		r.Add("tok", 200)
		clock.Advance(time.Second)
		r.tick()
	}
	r.Finish()

	type rec struct {
		Level    string
		Message  string
		Done     int64
		Total    int64
		Pct      float64
		OK       int64 `json:"ok"`
		Rej      int64
		Tok      int64
		TokPerS  float64 `json:"tok_per_s"`
		ETA      string
		Elapsed  string
		Finished bool
	}
	var got []rec
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Contains(line, "\r") {
			t.Fatalf("log mode wrote a redraw: %q", line)
		}
		var x rec
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, x)
	}
	want := []rec{
		{"info", "extract", 100, 1000, 10, 90, 10, 2000, 200, "1m30s", "10s", false},
		{"info", "extract", 200, 1000, 20, 180, 20, 4000, 200, "1m20s", "20s", false},
		{"info", "extract", 300, 1000, 30, 270, 30, 6000, 200, "1m10s", "30s", false},
		{"info", "extract", 350, 1000, 35, 315, 35, 7000, 200, "", "35s", true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestUnknownTotalLog(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	r := New(Options{Out: &buf, Mode: ModeLog, Now: clock.Now, NoBackground: true, LogInterval: time.Second})
	clock.Advance(time.Second)
	r.Advance(3)
	var x map[string]any
	if err := json.Unmarshal(buf.Bytes(), &x); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	for _, k := range []string{"total", "pct", "eta"} {
		if _, ok := x[k]; ok {
			t.Errorf("field %q logged with an unknown total: %v", k, x)
		}
	}
	if x["done"] != float64(3) {
		t.Errorf("done = %v, want 3", x["done"])
	}
}

func TestConcurrentUpdates(t *testing.T) {
	var buf bytes.Buffer
	r := New(Options{Out: &buf, Mode: ModeTerminal, Total: 8000, Counters: []string{"ok"}, RedrawInterval: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Advance(1)
				r.Add("ok", 1)
			}
		})
	}
	wg.Wait()
	r.Finish()
	if got := lastLine(buf.String()); !strings.Contains(got, "100% 8000/8000 rows  ok 8000") {
		t.Errorf("final line %q lost updates", got)
	}
}

func TestBackgroundRefreshLogsWhileStalled(t *testing.T) {
	var buf syncBuffer
	r := New(Options{Out: &buf, Mode: ModeLog, LogInterval: 20 * time.Millisecond})
	r.Advance(1)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `"done":1`) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.Finish()
	if !strings.Contains(buf.String(), `"done":1`) {
		t.Errorf("no log line from the background refresher: %q", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while the reporter writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestGauges(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0)}
	r := New(Options{Out: &buf, Total: 10, Mode: ModeTerminal, Now: clock.Now, Width: func() int { return 120 }, NoBackground: true, Counters: []string{"ok"}})
	r.Set("loss", 2.345678)
	r.Set("eval", 3.5)
	r.Set("loss", 1.25)
	clock.Advance(time.Second)
	r.Advance(1)
	r.Finish()
	out := buf.String()
	last := out[strings.LastIndex(out, "\r")+1:]
	if !strings.Contains(last, "loss 1.25") || !strings.Contains(last, "eval 3.5") || strings.Index(last, "loss") > strings.Index(last, "eval") {
		t.Errorf("gauges not shown in order: %q", last)
	}
}
