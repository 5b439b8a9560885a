package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
)

// TestHostilePrompts reproduces issue 9 item 1 at the engine: a prompt of
// 40,000 'A's (or spaces, or '=') segfaulted in the tokenizer before the
// prompt-too-long check could run. Runs of any size, in the first or a later
// phase, past the tokenizer's own limit too, are now ErrPromptTooLong, and
// the engine answers the next request.
func TestHostilePrompts(t *testing.T) {
	e := newEngine(t, 1, 512, engine.Options{})
	for _, n := range []int{40_000, 400_000, llama.MaxTokenizeBytes + 1, 3 << 20} {
		for _, ch := range []string{"A", " ", "="} {
			run := strings.Repeat(ch, n)
			for _, phases := range [][]engine.Phase{
				{{Prefix: run, MaxTokens: 2}},
				{{Prefix: "plan:", MaxTokens: 2}, {Prefix: run, MaxTokens: 2}},
			} {
				_, err := e.Generate(context.Background(), engine.Request{Phases: phases})
				if !errors.Is(err, engine.ErrPromptTooLong) {
					t.Fatalf("%d x %q in phase %d: err = %v, want ErrPromptTooLong", n, ch, len(phases)-1, err)
				}
			}
		}
	}
	res, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: "hello", MaxTokens: 3}}})
	if err != nil || res.GeneratedTokens() == 0 {
		t.Fatalf("next request: %v %+v", err, res)
	}
}
