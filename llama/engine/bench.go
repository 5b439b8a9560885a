package engine

import (
	"fmt"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
)

// MeasureBatched runs one batched benchmark on lctx, which must hold at
// least parallel sequences of prompt+gen tokens. Token ids are synthetic
// (the speed of a decode step does not depend on them) and the "generated"
// token of each step is fed back without sampling, to time the model alone.
func MeasureBatched(lctx *llama.Context, parallel, prompt, gen int) (BatchedResult, error) {
	res := BatchedResult{Parallel: parallel, PromptTokens: prompt, GenTokens: gen}
	if parallel > lctx.Sequences() {
		return res, fmt.Errorf("bench: %d sequences, context holds %d", parallel, lctx.Sequences())
	}
	if parallel*(prompt+gen) > lctx.ContextSize() {
		return res, fmt.Errorf("bench: %d×(%d+%d) tokens exceed the context of %d", parallel, prompt, gen, lctx.ContextSize())
	}
	vocab := lctx.Model().VocabSize()
	b, err := llama.NewBatch(lctx.BatchSize(), 1)
	if err != nil {
		return res, err
	}
	defer b.Close()
	lctx.ClearKV()
	tok := func(i int) llama.Token { return llama.Token(1 + i%(vocab-2)) }
	// Prompt phase: all sequences' prompts, split into batches of BatchSize.
	start := time.Now()
	for s := 0; s < parallel; s++ {
		for p := 0; p < prompt; p++ {
			if b.Len() == b.Cap() {
				if err := lctx.Decode(b); err != nil {
					return res, err
				}
				b.Clear()
			}
			if _, err := b.Add(tok(s*31+p), llama.Pos(p), llama.SeqID(s), p == prompt-1); err != nil {
				return res, err
			}
		}
	}
	if b.Len() > 0 {
		if err := lctx.Decode(b); err != nil {
			return res, err
		}
	}
	res.PromptTime = time.Since(start)
	// Generation phase: one token per sequence per step.
	start = time.Now()
	for g := 0; g < gen; g++ {
		b.Clear()
		for s := 0; s < parallel; s++ {
			if _, err := b.Add(tok(s+g), llama.Pos(prompt+g), llama.SeqID(s), true); err != nil {
				return res, err
			}
		}
		if err := lctx.Decode(b); err != nil {
			return res, err
		}
	}
	res.GenTime = time.Since(start)
	lctx.ClearKV()
	return res, nil
}
