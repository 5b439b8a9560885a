package llama

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/codeplan-dev/codeplan/llama/sampling"
)

// SamplerOptions describe a sampler chain (sampling.Options: a cgo-free
// type, so that packages choosing sampling settings need not import llama).
type SamplerOptions = sampling.Options

// SamplingError is an out-of-range sampler option (sampling.Error).
type SamplingError = sampling.Error

// MaxTemperature and MaxPenalty bound the sampler's knobs (see sampling).
const (
	MaxTemperature = sampling.MaxTemperature
	MaxPenalty     = sampling.MaxPenalty
)

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
