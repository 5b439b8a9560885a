package llama_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// TestSamplerRejectsBadValues reproduces issue 9 item 2 at the library
// layer: a NaN temperature reached llama.cpp and aborted the process in the
// distribution sampler; out-of-range values gave a struct dump. Each bad
// value is now a *SamplingError that names the option.
func TestSamplerRejectsBadValues(t *testing.T) {
	m := loadTiny(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		option string
		o      llama.SamplerOptions
	}{
		{"Temperature", llama.SamplerOptions{Temperature: nan}},
		{"Temperature", llama.SamplerOptions{Temperature: inf}},
		{"Temperature", llama.SamplerOptions{Temperature: -1}},
		{"TopP", llama.SamplerOptions{Temperature: 1, TopP: 7}},
		{"TopP", llama.SamplerOptions{Temperature: 1, TopP: nan}},
		{"TopK", llama.SamplerOptions{Temperature: 1, TopK: -1}},
		{"MinP", llama.SamplerOptions{Temperature: 1, MinP: -inf}},
		{"MinP", llama.SamplerOptions{Temperature: 1, MinP: 1.5}},
		{"RepeatPenalty", llama.SamplerOptions{RepeatPenalty: nan}},
		{"FrequencyPenalty", llama.SamplerOptions{FrequencyPenalty: inf}},
		{"PresencePenalty", llama.SamplerOptions{PresencePenalty: nan}},
		{"RepeatLastN", llama.SamplerOptions{RepeatLastN: -5}},
	}
	for _, c := range cases {
		s, err := llama.NewSampler(m, c.o)
		if err == nil {
			s.Close()
			t.Fatalf("%+v: accepted", c.o)
		}
		var se *llama.SamplingError
		if !errors.As(err, &se) || se.Option != c.option {
			t.Fatalf("%+v: err = %v, want a SamplingError for %s", c.o, err, c.option)
		}
		if strings.Contains(err.Error(), "{") {
			t.Errorf("message %q dumps a struct", err)
		}
	}
	s, err := llama.NewSampler(m, llama.SamplerOptions{Temperature: 0.7, TopP: 1, TopK: 40, MinP: 0.05, RepeatPenalty: 1.1})
	if err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	s.Close()
}

// TestAdapterScaleChecked: a NaN or huge LoRA scale turns the logits into
// NaN; it is refused before llama.cpp applies it.
func TestAdapterScaleChecked(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 2, Alpha: 4, Seed: 1})
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 64})
	for _, scale := range []float32{float32(math.NaN()), float32(math.Inf(-1)), 1e30, -101} {
		if err := ctx.SetAdapter(a, scale); !errors.Is(err, llama.ErrAdapter) || !strings.Contains(err.Error(), "LoRA scale") {
			t.Errorf("scale %g: err = %v", scale, err)
		}
	}
	if err := ctx.SetAdapter(a, 0.5); err != nil {
		t.Errorf("scale 0.5: %v", err)
	}
}
