package progress

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// state is everything one rendering shows, captured under the lock so that
// formatting needs none.
type state struct {
	total, done int64
	unit        string
	counters    []counter
	gauges      []gauge
	rateName    string
	rateValue   int64
	rate        float64
	hasRate     bool
	eta         time.Duration
	hasETA      bool
	elapsed     time.Duration
	final       bool
}

// counter is one named counter and its value.
type counter struct {
	name  string
	value int64
}

// gauge is one named measurement and its latest value.
type gauge struct {
	name  string
	value float64
}

// percent is done as a percentage of total, clamped to 100 because a
// caller may overshoot a total that was an estimate.
func (s state) percent() float64 {
	if s.total <= 0 {
		return 0
	}
	return math.Min(100, round1(float64(s.done)*100/float64(s.total)))
}

// Bar limits: a bar narrower than minBar says nothing that the percentage
// does not, and one wider than maxBar only pushes the figures away.
const (
	minBar = 10
	maxBar = 40
)

// formatLine renders s for a terminal width columns wide. The bar takes
// whatever room the figures leave (up to maxBar) and is dropped when under
// minBar; if even the figures do not fit, the line is cut, because a line
// that wraps can no longer be redrawn in place with "\r".
func formatLine(s state, width int) string {
	if width <= 0 {
		width = DefaultWidth
	}
	// One column stays free: writing into the last column makes some
	// terminals wrap before the next "\r".
	room := width - 1

	var parts []string
	if s.total > 0 {
		pct := int(math.Min(100, math.Floor(float64(s.done)*100/float64(s.total))))
		parts = append(parts, fmt.Sprintf("%3d%% %d/%d %s", pct, s.done, s.total, s.unit))
	} else {
		parts = append(parts, fmt.Sprintf("%d %s", s.done, s.unit))
	}
	for _, c := range s.counters {
		parts = append(parts, fmt.Sprintf("%s %d", c.name, c.value))
	}
	for _, g := range s.gauges {
		parts = append(parts, fmt.Sprintf("%s %.4g", g.name, g.value))
	}
	if s.hasRate {
		parts = append(parts, fmt.Sprintf("%s %s/s", formatRate(s.rate), s.rateName))
	}
	if s.final {
		parts = append(parts, "in "+formatDuration(s.elapsed))
	} else if s.hasETA {
		parts = append(parts, "ETA "+formatDuration(s.eta))
	}
	text := strings.Join(parts, "  ")

	if s.total > 0 {
		if bar := min(maxBar, room-len(text)-len("[] ")); bar >= minBar {
			filled := int(min(int64(bar), max(0, s.done*int64(bar)/s.total)))
			return "[" + strings.Repeat("#", filled) + strings.Repeat(".", bar-filled) + "] " + text
		}
		text = strings.TrimLeft(text, " ")
	}
	if len(text) > room {
		text = text[:max(room, 0)]
	}
	return text
}

// formatRate prints a rate with one decimal when small, where the decimal
// still carries information, and as a whole number otherwise.
func formatRate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// formatDuration prints d compactly at a resolution that matches how far
// away it is: "45s", "3m12s", "2h05m".
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

// round1 rounds to one decimal, so log fields do not carry float noise.
func round1(x float64) float64 {
	return math.Round(x*10) / 10
}
