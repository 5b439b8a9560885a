// Package sampling holds the options of llama's sampler chain as a plain Go
// type (no cgo), with their checks and their part of a run's settings key:
// the jobs, the server and the CLI choose sampling settings through it
// without importing the llama binding.
package sampling

import (
	"fmt"
	"math"
	"strconv"
)

// Options describe a sampler chain. The zero value is greedy decoding.
type Options struct {
	// Temperature 0 selects greedy decoding (the most likely token); it must
	// be in [0, MaxTemperature].
	Temperature float32
	// TopK keeps the K most likely tokens (0 = off).
	TopK int
	// TopP keeps the smallest set of tokens whose probability reaches P (0 or 1 = off).
	TopP float32
	// MinP drops tokens less likely than MinP times the top token (0 = off).
	MinP float32
	// RepeatPenalty > 1 discourages tokens seen in the last RepeatLastN tokens
	// (RepeatLastN 0 = 64); FrequencyPenalty and PresencePenalty work as in
	// OpenAI's API.
	RepeatPenalty                     float32
	RepeatLastN                       int
	FrequencyPenalty, PresencePenalty float32
	// Seed makes sampling reproducible.
	Seed uint32
	// Grammar is a GBNF grammar that constrains the output; GrammarRoot names
	// its start rule (default "root").
	Grammar, GrammarRoot string
}

// Error is an out-of-range sampler option. Option is the Options field
// name; servers and CLIs map it to their own words.
type Error struct {
	Option string
	Value  float64
	Want   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s is %g, want %s", e.Option, e.Value, e.Want)
}

// Validate checks every option: NaN and infinities would reach llama.cpp's
// samplers as probabilities that sort and sum to garbage, and its
// distribution sampler then aborts the process, so they are refused here.
func (o Options) Validate() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	check := []struct {
		name     string
		v        float32
		lo, hi   float32
		wantDesc string
	}{
		{"Temperature", o.Temperature, 0, MaxTemperature, fmt.Sprintf("a number in [0, %d]", MaxTemperature)},
		{"TopP", o.TopP, 0, 1, "a number in [0, 1]"},
		{"MinP", o.MinP, 0, 1, "a number in [0, 1]"},
		{"RepeatPenalty", o.RepeatPenalty, 0, MaxPenalty, fmt.Sprintf("a number in [0, %d]", MaxPenalty)},
		{"FrequencyPenalty", o.FrequencyPenalty, -MaxPenalty, MaxPenalty, fmt.Sprintf("a number in [-%d, %d]", MaxPenalty, MaxPenalty)},
		{"PresencePenalty", o.PresencePenalty, -MaxPenalty, MaxPenalty, fmt.Sprintf("a number in [-%d, %d]", MaxPenalty, MaxPenalty)},
	}
	for _, c := range check {
		if !finite(c.v) || c.v < c.lo || c.v > c.hi {
			return &Error{Option: c.name, Value: float64(c.v), Want: c.wantDesc}
		}
	}
	// Both reach C as int32: a larger value would wrap around.
	if o.TopK < 0 || o.TopK > math.MaxInt32 {
		return &Error{Option: "TopK", Value: float64(o.TopK), Want: "a whole number >= 0"}
	}
	if o.RepeatLastN < 0 || o.RepeatLastN > math.MaxInt32 {
		return &Error{Option: "RepeatLastN", Value: float64(o.RepeatLastN), Want: "a whole number >= 0"}
	}
	return nil
}

// MaxTemperature and MaxPenalty bound the sampler's knobs. Past them
// nothing changes in practice (the draw is already uniform, or the token is
// already excluded), while values near float32's limit overflow in C.
const (
	MaxTemperature = 100
	MaxPenalty     = 100
)

// Key returns the settings that decide what is sampled, for the settings
// key of a resumable run: temperature, top_p, top_k, min_p,
// repeat_penalty and seed.
func (o Options) Key() map[string]string {
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return map[string]string{
		"temperature": f(o.Temperature), "top_p": f(o.TopP), "top_k": strconv.Itoa(o.TopK),
		"min_p": f(o.MinP), "repeat_penalty": f(o.RepeatPenalty), "seed": strconv.FormatUint(uint64(o.Seed), 10),
	}
}

// Greedy reports whether the options select greedy decoding.
func (o Options) Greedy() bool { return o.Temperature <= 0 }
