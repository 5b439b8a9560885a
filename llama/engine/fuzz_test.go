package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
)

// FuzzHostilePrompt feeds random and pathological prompts through the
// tokenizer and the engine on the tiny model. Every prompt must give a
// result or ErrPromptTooLong, never a crash (a run of 32,000 'A's used to
// overflow the tokenizer's stack), and the cheap length check must never
// refuse a prompt whose tokens fit. The seeds are the pathological cases,
// so plain `go test` runs them:
//
//	go test -run '^$' -fuzz FuzzHostilePrompt -fuzztime 2m ./engine/
func FuzzHostilePrompt(f *testing.F) {
	e := newEngine(f, 1, 256, engine.Options{})
	for _, seed := range []string{
		"hello",
		strings.Repeat("A", 40_000),
		strings.Repeat(" ", 40_000),
		strings.Repeat("=", 40_000),
		strings.Repeat("\x00", 5_000),
		"a\x00b\x00<|im_end|>\x00",
		"\xff\xfe\xfd invalid \xc3\x28 utf-8 \xe2\x82",
		strings.Repeat("\xc3", 300),
		strings.Repeat("<|im_start|>", 30),
		strings.Repeat("<|endoftext|>", 19), // 247 bytes, 19 tokens: fits
		strings.Repeat("ab ", 2_000),
		strings.Repeat("🙂", 10_000),
		strings.Repeat("x", llama.MaxTokenizeBytes+1),
	} {
		f.Add(seed, uint8(0))
	}
	f.Fuzz(func(t *testing.T, prompt string, repeat uint8) {
		// repeat lets the fuzzer build long runs from short inputs.
		if repeat > 1 && len(prompt)*int(repeat) <= 1<<20 {
			prompt = strings.Repeat(prompt, int(repeat)*50)
		}
		toks, tokErr := model.Tokenize(prompt, true, true)
		if tokErr != nil && !errors.Is(tokErr, llama.ErrTextTooLong) {
			t.Fatalf("tokenize: %v", tokErr)
		}
		res, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 2}}})
		switch {
		case err == nil:
			if tokErr != nil || len(toks)+1 > e.SlotContext() {
				t.Fatalf("%d tokens (%v) ran in a slot of %d", len(toks), tokErr, e.SlotContext())
			}
			if res.PromptTokens != len(toks) {
				t.Errorf("engine saw %d prompt tokens, Tokenize gives %d", res.PromptTokens, len(toks))
			}
		case errors.Is(err, engine.ErrPromptTooLong):
			if tokErr == nil && len(toks)+1 <= e.SlotContext() {
				t.Fatalf("refused a prompt of %d tokens that fits a slot of %d: %v", len(toks), e.SlotContext(), err)
			}
		case tokErr == nil && len(toks) == 0:
			// An empty prompt has nothing to continue: a plain error.
		default:
			t.Fatalf("generate: %v", err)
		}
	})
}
