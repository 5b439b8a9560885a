package loglik

import (
	"errors"
	"fmt"
	"sync"

	"github.com/codeplan-dev/codeplan/llama"
)

// Text scores texts: it tokenizes, and serialises callers on one Scorer so
// that many goroutines (extract's workers, eval's items) can share it.
type Text struct {
	mu     sync.Mutex
	model  *llama.Model
	scorer *Scorer
}

// NewText scores on ctx, a context of model reserved for scoring.
func NewText(model *llama.Model, ctx *llama.Context) (*Text, error) {
	s, err := NewScorer(ctx)
	if err != nil {
		return nil, err
	}
	return &Text{model: model, scorer: s}, nil
}

// Close frees the scorer (not the context or the model).
func (t *Text) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scorer.Close()
}

// Window is the most tokens one request may hold (see Scorer.Window).
func (t *Text) Window() int { return t.scorer.Window() }

// Pair builds the request for a continuation after a context.
//
// The two texts are tokenized separately, the way finetune tokenizes a
// training example's prompt and target: the context with the model's
// special tokens (BOS, and chat-template markers parsed as such), the
// continuation as plain text. Every continuation is then the same tokens
// whatever context precedes it, which is what comparisons of one response
// under two contexts (a plan's gain) and of choices under one context need.
func (t *Text) Pair(context, continuation string) (Request, error) {
	ctx, err := t.model.Tokenize(context, true, true)
	if err != nil {
		return Request{}, err
	}
	cont, err := t.model.Tokenize(continuation, false, false)
	if err != nil {
		return Request{}, err
	}
	r := Request{Context: ctx, Continuation: cont}
	return r, t.scorer.Check(r)
}

// Whole builds the request that scores a text from its start: its first
// token (BOS when the model adds one) is the context and every later token
// is scored. The text must give at least one token after the first.
func (t *Text) Whole(text string) (Request, error) {
	toks, err := t.model.Tokenize(text, true, false)
	if err != nil {
		return Request{}, err
	}
	if len(toks) < 2 {
		return Request{}, errors.New("text has fewer than 2 tokens: nothing to score")
	}
	r := Request{Context: toks[:1], Continuation: toks[1:]}
	return r, t.scorer.Check(r)
}

// Chunks builds llama.cpp's llama-perplexity requests for a text: the
// tokens are cut into chunks of n (the remainder is dropped), the first
// token of each chunk is replaced by BOS when the model adds one, and only
// the second half of each chunk is scored (each scored token sees at least
// n/2 tokens before it). A text with fewer than n tokens gives no chunks.
func (t *Text) Chunks(text string, n int) ([]Request, error) {
	if n < 4 {
		return nil, fmt.Errorf("chunk size %d is too small (want at least 4)", n)
	}
	if n > t.scorer.Window()+1 {
		return nil, fmt.Errorf("%w: chunks of %d tokens, a sequence holds %d", ErrTooLong, n, t.scorer.Window())
	}
	toks, err := t.model.Tokenize(text, true, false)
	if err != nil {
		return nil, err
	}
	bos, err := t.model.BOS()
	if err != nil {
		return nil, err
	}
	addBOS, err := t.model.AddBOS()
	if err != nil {
		return nil, err
	}
	return ChunkRequests(toks, n, bos, addBOS), nil
}

// ChunkRequests is Chunks on tokens (see Text.Chunks).
func ChunkRequests(toks []llama.Token, n int, bos llama.Token, addBOS bool) []Request {
	first := n / 2
	var reqs []Request
	for start := 0; start+n <= len(toks); start += n {
		chunk := append([]llama.Token(nil), toks[start:start+n]...)
		if addBOS {
			chunk[0] = bos
		}
		reqs = append(reqs, Request{Context: chunk[:first+1], Continuation: chunk[first+1:]})
	}
	return reqs
}

// Score scores requests (see Scorer.Score); concurrent callers take turns.
func (t *Text) Score(reqs []Request) ([]Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scorer.Score(reqs)
}

// Choices scores each continuation after one context (a multiple-choice
// question's options, say) in one call.
func (t *Text) Choices(context string, continuations []string) ([]Result, error) {
	reqs := make([]Request, len(continuations))
	for i, c := range continuations {
		r, err := t.Pair(context, c)
		if err != nil {
			return nil, fmt.Errorf("choice %d: %w", i+1, err)
		}
		reqs[i] = r
	}
	return t.Score(reqs)
}
