package llama

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// SamplerOptions describe a sampler chain. The zero value is greedy decoding.
type SamplerOptions struct {
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

// SamplingError is an out-of-range sampler option. Option is the
// SamplerOptions field name; servers and CLIs map it to their own words.
type SamplingError struct {
	Option string
	Value  float64
	Want   string
}

func (e *SamplingError) Error() string {
	return fmt.Sprintf("%s is %g, want %s", e.Option, e.Value, e.Want)
}

// Validate checks every option: NaN and infinities would reach llama.cpp's
// samplers as probabilities that sort and sum to garbage, and its
// distribution sampler then aborts the process, so they are refused here.
func (o SamplerOptions) Validate() error {
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
			return &SamplingError{Option: c.name, Value: float64(c.v), Want: c.wantDesc}
		}
	}
	// Both reach C as int32: a larger value would wrap around.
	if o.TopK < 0 || o.TopK > math.MaxInt32 {
		return &SamplingError{Option: "TopK", Value: float64(o.TopK), Want: "a whole number >= 0"}
	}
	if o.RepeatLastN < 0 || o.RepeatLastN > math.MaxInt32 {
		return &SamplingError{Option: "RepeatLastN", Value: float64(o.RepeatLastN), Want: "a whole number >= 0"}
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
func (o SamplerOptions) Key() map[string]string {
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return map[string]string{
		"temperature": f(o.Temperature), "top_p": f(o.TopP), "top_k": strconv.Itoa(o.TopK),
		"min_p": f(o.MinP), "repeat_penalty": f(o.RepeatPenalty), "seed": strconv.FormatUint(uint64(o.Seed), 10),
	}
}

// Greedy reports whether the options select greedy decoding.
func (o SamplerOptions) Greedy() bool { return o.Temperature <= 0 }

// Sampler picks the next token from a context's logits. It keeps state
// (penalty history, grammar position): use one per sequence, and not
// concurrently.
type Sampler struct {
	c     *C.struct_llama_sampler
	model *Model // counted: a grammar sampler keeps the model's vocabulary
}

// NewSampler builds a sampler chain for the model: grammar first (so every
// later stage sees only allowed tokens), then penalties, the truncations, and
// finally temperature with a seeded draw, or the greedy pick.
func NewSampler(m *Model, o SamplerOptions) (s *Sampler, err error) {
	err = m.use(func(_ *C.struct_llama_model, v *C.struct_llama_vocab) error {
		var chain *C.struct_llama_sampler
		if chain, err = newChain(v, o); err != nil {
			return err
		}
		m.retain(userSamplers)
		s = &Sampler{c: chain, model: m}
		trackLeak(s, "Sampler", func(s *Sampler) bool { return s.c != nil })
		return nil
	})
	return s, err
}

// newChain builds the C sampler chain of NewSampler.
func newChain(vocab *C.struct_llama_vocab, o SamplerOptions) (*C.struct_llama_sampler, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	if o.Grammar != "" {
		if err := checkGrammar(o.Grammar); err != nil {
			return nil, err
		}
	}
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	if o.Grammar != "" {
		root := o.GrammarRoot
		if root == "" {
			root = "root"
		}
		cg := C.CString(o.Grammar)
		cr := C.CString(root)
		eb := newErrBuf()
		g := C.cp_grammar(vocab, cg, cr, eb.p, errBufLen)
		msg := eb.String()
		eb.free()
		C.free(unsafe.Pointer(cg))
		C.free(unsafe.Pointer(cr))
		if g == nil {
			C.llama_sampler_free(chain)
			return nil, fmt.Errorf("%w: %s", ErrGrammar, msg)
		}
		C.llama_sampler_chain_add(chain, g)
	}
	if (o.RepeatPenalty != 0 && o.RepeatPenalty != 1) || o.FrequencyPenalty != 0 || o.PresencePenalty != 0 {
		lastN := o.RepeatLastN
		if lastN == 0 {
			lastN = 64
		}
		rp := o.RepeatPenalty
		if rp == 0 {
			rp = 1
		}
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(rp), C.float(o.FrequencyPenalty), C.float(o.PresencePenalty)))
	}
	if o.Greedy() {
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
		return chain, nil
	}
	if o.TopK > 0 {
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_k(C.int32_t(o.TopK)))
	}
	if o.TopP > 0 && o.TopP < 1 {
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(C.float(o.TopP), 1))
	}
	if o.MinP > 0 {
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_min_p(C.float(o.MinP), 1))
	}
	C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(C.float(o.Temperature)))
	C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(C.uint32_t(o.Seed)))
	return chain, nil
}

// Sample picks a token from the logits of batch index i of the context's
// last Decode and records it (penalties, grammar state).
func (s *Sampler) Sample(ctx *Context, i int) (Token, error) {
	if s.c == nil {
		return 0, fmt.Errorf("sample: sampler %w", ErrClosed)
	}
	if err := ctx.checkOutput(i); err != nil {
		return 0, err
	}
	var tok C.llama_token
	eb := newErrBuf()
	defer eb.free()
	if C.cp_sample(s.c, ctx.c, C.int32_t(i), &tok, eb.p, errBufLen) != 0 {
		return 0, fmt.Errorf("sample: %s", eb)
	}
	return Token(tok), nil
}

// Accept records a token that was chosen elsewhere (for example a prompt
// token) so penalties and grammar know about it.
func (s *Sampler) Accept(t Token) error {
	if s.c == nil {
		return fmt.Errorf("accept: sampler %w", ErrClosed)
	}
	eb := newErrBuf()
	defer eb.free()
	if C.cp_accept(s.c, C.llama_token(t), eb.p, errBufLen) != 0 {
		return fmt.Errorf("accept token %d: %s", t, eb)
	}
	return nil
}

// Reset forgets the sampler's history (penalties, grammar position).
func (s *Sampler) Reset() {
	if s.c != nil {
		C.llama_sampler_reset(s.c)
	}
}

// Close frees the sampler (and lets its model be closed).
func (s *Sampler) Close() {
	if s.c != nil {
		C.llama_sampler_free(s.c)
		s.c = nil
		s.model.release(userSamplers)
	}
}
