package progress

import "time"

// window measures the rate of a monotonically growing counter over roughly
// the last span of time. A plain "total / elapsed" average reacts too slowly
// once a job has run for an hour, and an instantaneous rate jumps with every
// batch; a sliding window is the compromise.
type window struct {
	span    time.Duration
	samples []sample // ascending in time
}

// sample is the value of a counter at one moment.
type sample struct {
	t time.Time
	v int64
}

// add records that the counter was v at time t. Samples closer than
// span/16 to the previous one are skipped: the rate always uses the current
// value, so old samples only serve as the window's left edge, and skipping
// keeps memory bounded however often counters are updated.
func (w *window) add(t time.Time, v int64) {
	if n := len(w.samples); n > 0 && t.Sub(w.samples[n-1].t) < w.span/16 {
		return
	}
	w.samples = append(w.samples, sample{t, v})
	w.prune(t)
}

// prune drops samples that are no longer needed as the left edge: it keeps
// the newest sample at or before now-span, so the window covers at least span
// once that much history exists.
func (w *window) prune(now time.Time) {
	cut := now.Add(-w.span)
	i := 0
	for i+1 < len(w.samples) && !w.samples[i+1].t.After(cut) {
		i++
	}
	if i > 0 {
		w.samples = append(w.samples[:0], w.samples[i:]...)
	}
}

// rate returns the counter's growth per second between the window's left
// edge and now, where the counter is v. ok is false while the window is too
// short (under span/16) for the figure to mean anything, e.g. right after
// the start.
func (w *window) rate(now time.Time, v int64) (perSec float64, ok bool) {
	w.prune(now)
	if len(w.samples) == 0 {
		return 0, false
	}
	dt := now.Sub(w.samples[0].t)
	if dt <= 0 || dt < w.span/16 {
		return 0, false
	}
	return float64(v-w.samples[0].v) / dt.Seconds(), true
}
