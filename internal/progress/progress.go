// Package progress reports the advance of long jobs (extract, generate,
// eval, finetune) on stderr.
//
// On a terminal it keeps a single line redrawn in place, at most a few
// times a second:
//
//	[#####.....]  42% 4200/10000 rows  ok 4100  rej 100  312 tok/s  ETA 3m12s
//
// Elsewhere (a log file, CI, nohup) redrawing would fill the file with
// carriage returns, so it writes a zerolog info line every LogInterval with
// the same figures as structured fields instead.
package progress

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/codeplan-dev/codeplan/internal/logging"
	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Mode selects how progress is shown.
type Mode int

const (
	// ModeAuto redraws a line when Out is a terminal and logs otherwise.
	ModeAuto Mode = iota
	// ModeTerminal always redraws a single line.
	ModeTerminal
	// ModeLog always writes periodic log lines.
	ModeLog
)

// Defaults for the zero values of Options.
const (
	DefaultUnit           = "rows"
	DefaultRateWindow     = 10 * time.Second
	DefaultETAWindow      = time.Minute
	DefaultRedrawInterval = 200 * time.Millisecond
	DefaultLogInterval    = 10 * time.Second
	DefaultWidth          = 80
	DefaultMessage        = "progress"
)

// Options configures a Reporter. Only Total is usually needed; every zero
// value has a sensible default.
type Options struct {
	// Out receives the redrawn line in terminal mode and decides ModeAuto;
	// nil means os.Stderr.
	Out io.Writer
	// Total is the number of units the job will complete; 0 means unknown,
	// in which case neither a bar, a percentage nor an ETA is shown.
	Total int64
	// Unit names what Advance counts ("rows" when empty).
	Unit string
	// Counters lists named counters in display order, e.g. {"ok", "rej"}.
	// Counters first seen in Add and not listed here are shown after them,
	// except RateCounter.
	Counters []string
	// RateCounter names a counter whose rate is shown instead of its value,
	// e.g. "tok" gives "312 tok/s". Empty means no rate.
	RateCounter string
	// RateWindow is the sliding window RateCounter's rate is smoothed over
	// (DefaultRateWindow when zero).
	RateWindow time.Duration
	// ETAWindow is the sliding window of the row rate the ETA is based on
	// (DefaultETAWindow when zero). It is longer than RateWindow because
	// rows complete in batches, and a short window makes the ETA jump.
	ETAWindow time.Duration
	// RedrawInterval is the least time between two redraws on a terminal
	// (DefaultRedrawInterval when zero).
	RedrawInterval time.Duration
	// LogInterval is the time between two log lines when not on a terminal
	// (DefaultLogInterval when zero).
	LogInterval time.Duration
	// Logger receives the log lines in log mode; nil means a JSON logger
	// writing to Out.
	Logger *zerolog.Logger
	// Message is the message of the log lines (DefaultMessage when empty),
	// e.g. "extract" so that the lines of several jobs can be told apart.
	Message string
	// Mode chooses between the redrawn line and log lines.
	Mode Mode
	// Now is the clock (time.Now when nil); tests pass a fake one.
	Now func() time.Time
	// Width returns the terminal width in columns; nil means asking the
	// terminal behind Out, falling back to DefaultWidth. It is called on
	// every redraw so that the line follows window resizes.
	Width func() int
	// NoBackground turns off the goroutine that refreshes the output while
	// no counter changes (so that a stalled job still shows a falling rate
	// and still logs). Output then happens only on updates and Finish, which
	// makes tests with a fake clock deterministic.
	NoBackground bool
}

// Reporter tracks and shows the progress of one job. All methods are safe
// for concurrent use, so workers can update counters directly.
type Reporter struct {
	mu         sync.Mutex
	opts       Options
	out        io.Writer
	log        zerolog.Logger
	terminal   bool
	start      time.Time
	total      int64
	done       int64
	names      []string           // counters to show, in order
	values     map[string]int64   // every counter, shown or not
	gaugeNames []string           // gauges, in the order first set
	gauges     map[string]float64 // latest value of every gauge
	rows       window             // done, for the ETA
	rate       window             // values[RateCounter]
	lastOut    time.Time          // last redraw or log line
	finished   bool

	stop    chan struct{}
	stopped chan struct{}
}

// New starts reporting. In terminal mode the initial line is drawn at once.
// Call Finish when the job ends, also on error, to stop the background
// refresher and leave the terminal on a fresh line.
func New(opts Options) *Reporter {
	if opts.Out == nil {
		opts.Out = os.Stderr
	}
	if opts.Unit == "" {
		opts.Unit = DefaultUnit
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = DefaultRateWindow
	}
	if opts.ETAWindow <= 0 {
		opts.ETAWindow = DefaultETAWindow
	}
	if opts.RedrawInterval <= 0 {
		opts.RedrawInterval = DefaultRedrawInterval
	}
	if opts.LogInterval <= 0 {
		opts.LogInterval = DefaultLogInterval
	}
	if opts.Message == "" {
		opts.Message = DefaultMessage
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Width == nil {
		opts.Width = terminalWidth(opts.Out)
	}

	r := &Reporter{
		opts:   opts,
		out:    opts.Out,
		total:  max(opts.Total, 0),
		values: make(map[string]int64),
		gauges: make(map[string]float64),
		rows:   window{span: opts.ETAWindow},
		rate:   window{span: opts.RateWindow},
	}
	switch opts.Mode {
	case ModeTerminal:
		r.terminal = true
	case ModeLog:
		r.terminal = false
	default:
		r.terminal = logging.IsTerminal(opts.Out)
	}
	if opts.Logger != nil {
		r.log = *opts.Logger
	} else {
		r.log = zerolog.New(opts.Out).With().Timestamp().Logger()
	}
	for _, name := range opts.Counters {
		if _, dup := r.values[name]; !dup {
			r.names = append(r.names, name)
			r.values[name] = 0
		}
	}

	r.start = opts.Now()
	r.lastOut = r.start
	r.rows.add(r.start, 0)
	r.rate.add(r.start, 0)
	if r.terminal {
		r.draw(r.start, false)
		activeMu.Lock()
		active = r
		activeMu.Unlock()
	}

	if !opts.NoBackground {
		r.stop = make(chan struct{})
		r.stopped = make(chan struct{})
		go r.refresh()
	}
	return r
}

// Advance adds n to the done counter (rows, by default).
func (r *Reporter) Advance(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	r.update()
}

// Add adds n to the named counter. A name that is neither in
// Options.Counters nor the RateCounter is appended to the displayed ones.
func (r *Reporter) Add(counter string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.values[counter]; !known && counter != r.opts.RateCounter {
		r.names = append(r.names, counter)
	}
	r.values[counter] += n
	r.update()
}

// Set shows a named measurement such as a loss: unlike counters it is a
// float and replaces its previous value. Gauges appear after the counters,
// in the order first set.
func (r *Reporter) Set(gauge string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.gauges[gauge]; !known {
		r.gaugeNames = append(r.gaugeNames, gauge)
	}
	r.gauges[gauge] = v
	r.update()
}

// SetTotal changes the total, e.g. once the input has been counted or when
// resuming skipped rows; 0 means unknown.
func (r *Reporter) SetTotal(total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = max(total, 0)
	r.update()
}

// Finish shows the final state: on a terminal the line is redrawn one last
// time and ended with a newline, otherwise a last log line is written with
// finished=true. Rates in the final state are averages over the whole run.
// Later calls, and updates after Finish, print nothing.
func (r *Reporter) Finish() {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.finished = true
	now := r.opts.Now()
	if r.terminal {
		r.draw(now, true)
		r.write("\n")
		activeMu.Lock()
		if active == r {
			active = nil
		}
		activeMu.Unlock()
	} else {
		r.logLine(now, true)
	}
	r.mu.Unlock()

	// Stopping waits for the refresher, which may itself be waiting for
	// r.mu, so it must happen after unlocking.
	if r.stop != nil {
		close(r.stop)
		<-r.stopped
	}
}

// refresh is the background goroutine: it re-renders when due even if no
// counter changes.
func (r *Reporter) refresh() {
	defer close(r.stopped)
	period := r.opts.RedrawInterval
	if !r.terminal {
		period = min(time.Second, r.opts.LogInterval)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			r.tick()
		}
	}
}

// tick renders if due without changing any counter.
func (r *Reporter) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update()
}

// update samples the windows and renders if the interval has passed.
// r.mu must be held.
func (r *Reporter) update() {
	if r.finished {
		return
	}
	now := r.opts.Now()
	r.rows.add(now, r.done)
	if r.opts.RateCounter != "" {
		r.rate.add(now, r.values[r.opts.RateCounter])
	}
	if r.terminal {
		if now.Sub(r.lastOut) >= r.opts.RedrawInterval {
			r.draw(now, false)
		}
		return
	}
	if now.Sub(r.lastOut) >= r.opts.LogInterval {
		r.logLine(now, false)
	}
}

// draw redraws the terminal line. The line is written first and the rest
// of the old one cleared after it, which flickers less than clearing first.
// r.mu must be held.
func (r *Reporter) draw(now time.Time, final bool) {
	r.lastOut = now
	r.write("\r" + formatLine(r.snapshot(now, final), r.opts.Width()) + "\x1b[K")
}

// write sends s to Out. Errors are ignored: progress output is cosmetic,
// and failing the job because stderr went away would be worse.
func (r *Reporter) write(s string) {
	_, _ = io.WriteString(r.out, s)
}

// logLine writes one structured log line. r.mu must be held.
func (r *Reporter) logLine(now time.Time, final bool) {
	r.lastOut = now
	s := r.snapshot(now, final)
	ev := r.log.Info().Int64("done", s.done)
	if s.total > 0 {
		ev = ev.Int64("total", s.total).Float64("pct", s.percent())
	}
	for _, c := range s.counters {
		ev = ev.Int64(c.name, c.value)
	}
	for _, g := range s.gauges {
		ev = ev.Float64(g.name, g.value)
	}
	if s.rateName != "" {
		ev = ev.Int64(s.rateName, s.rateValue)
		if s.hasRate {
			ev = ev.Float64(s.rateName+"_per_s", round1(s.rate))
		}
	}
	if s.hasETA {
		ev = ev.Str("eta", formatDuration(s.eta))
	}
	ev = ev.Str("elapsed", formatDuration(s.elapsed))
	if final {
		ev = ev.Bool("finished", true)
	}
	ev.Msg(r.opts.Message)
}

// snapshot captures what is to be shown at now. r.mu must be held.
func (r *Reporter) snapshot(now time.Time, final bool) state {
	s := state{
		total:   r.total,
		done:    r.done,
		unit:    r.opts.Unit,
		elapsed: now.Sub(r.start),
		final:   final,
	}
	for _, name := range r.names {
		s.counters = append(s.counters, counter{name, r.values[name]})
	}
	for _, name := range r.gaugeNames {
		s.gauges = append(s.gauges, gauge{name, r.gauges[name]})
	}
	if name := r.opts.RateCounter; name != "" {
		s.rateName = name
		s.rateValue = r.values[name]
		if final {
			// The final line summarises the run, so the whole-run
			// average is the figure worth keeping.
			if secs := s.elapsed.Seconds(); secs > 0 {
				s.rate, s.hasRate = float64(s.rateValue)/secs, true
			}
		} else {
			s.rate, s.hasRate = r.rate.rate(now, s.rateValue)
		}
	}
	if !final && s.total > 0 && s.done < s.total {
		if perSec, ok := r.rows.rate(now, s.done); ok && perSec > 0 {
			s.eta, s.hasETA = eta(s.total-s.done, perSec), true
		}
	}
	return s
}

// maxETA caps the ETA so that a nearly stalled job cannot overflow a
// time.Duration; anything this long just means "not in this run".
const maxETA = 999 * time.Hour

// eta is the time needed for remaining units at perSec units per second.
func eta(remaining int64, perSec float64) time.Duration {
	secs := float64(remaining) / perSec
	if secs >= maxETA.Seconds() {
		return maxETA
	}
	return time.Duration(secs * float64(time.Second))
}

// terminalWidth returns a function asking the terminal behind w for its
// width, falling back to DefaultWidth when w is not a terminal.
func terminalWidth(w io.Writer) func() int {
	return func() int {
		if f, ok := w.(*os.File); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		return DefaultWidth
	}
}
