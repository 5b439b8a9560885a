// Package engine is codeplan's continuous-batching generator: many requests
// share one llama.Context, and every decode step carries one token of each
// generating sequence plus chunks of pending prompts. A finished sequence is
// replaced by the next queued request at once, so nothing waits for the
// slowest row. extract, generate, serve and eval all run on it.
//
// A request may have several phases (the CodePlan plan, then the answer):
// when one phase stops, the next phase's prefix is appended to the same
// sequence and generation continues without recomputing the prompt.
package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/lm"
)

// The engine's requests and results are llama/lm's: the jobs depend on that
// cgo-free contract, not on this package.
type (
	FinishReason  = lm.FinishReason
	Phase         = lm.Phase
	Request       = lm.Request
	TokenLogProb  = lm.TokenLogProb
	TopLogProb    = lm.TopLogProb
	PhaseOutput   = lm.PhaseOutput
	Result        = lm.Result
	Stats         = lm.Stats
	BatchedResult = lm.BatchedResult
)

// Finish reasons (see llama/lm).
const (
	FinishStop      = lm.FinishStop
	FinishLength    = lm.FinishLength
	FinishCancelled = lm.FinishCancelled
	FinishError     = lm.FinishError
)

// MaxTopLogProbs bounds Request.TopLogProbs (see llama/lm).
const MaxTopLogProbs = lm.MaxTopLogProbs

// Errors returned by Submit or carried in Result.Err (see llama/lm).
var (
	ErrQueueFull     = lm.ErrQueueFull
	ErrClosed        = lm.ErrClosed
	ErrPromptTooLong = lm.ErrPromptTooLong
)

// Options configure an Engine.
type Options struct {
	// Parallel is the number of sequences decoded together (default 1).
	// It must not exceed the context's Sequences().
	Parallel int
	// QueueSize bounds requests waiting for a slot (default 4*Parallel);
	// Submit returns ErrQueueFull beyond it, SubmitWait blocks.
	QueueSize int
	// SlotContext is the context length each sequence may use (default:
	// context size / the context's sequences). Prompt + generation must fit.
	SlotContext int
	// PrefixCache keeps the tokens of the last Request.SharedPrefix in an
	// extra sequence (the context needs Parallel+1 sequences) and copies
	// them into each new request that starts with them.
	PrefixCache bool
	// Trace, if set, is called after every decode step, from the engine's
	// goroutine, with what the step carried and how far each sequence's KV
	// cells reach (extract --log-level debug logs it). It costs a few
	// calls into llama.cpp per sequence per step.
	Trace func(StepTrace)
}

// StepTrace describes one decode step (see Options.Trace).
type StepTrace struct {
	Step   int64         // 1 for the first step
	Tokens int           // tokens in the batch
	Decode time.Duration // time in llama_decode
	Seqs   []SeqTrace    // every sequence holding a request, in sequence order
	NKV    int           // cells attention spans: the largest Cells.Attended of Seqs
}

// SeqTrace is one sequence after a step.
type SeqTrace struct {
	Seq   llama.SeqID
	Pos   int // tokens of the request in the cache: what it needs
	Cells llama.KVCells
}

// The engine is the Generator of local runs.
var _ lm.Generator = (*Engine)(nil)

// Engine runs requests on one llama.Context.
type Engine struct {
	lctx    *llama.Context
	model   *llama.Model
	opts    Options
	queue   chan *job
	done    chan struct{}
	closing chan struct{}
	once    sync.Once

	promptTokens, cachedTokens, generated, steps, completed, busyNs atomic.Int64

	// The prefix cache lives in sequence cacheSeq; only the loop touches it.
	cacheSeq  llama.SeqID
	cacheText string
	cacheToks []llama.Token
	// cacheState is the cache sequence's saved cells (no UnifiedKV).
	cacheState []byte

	logits []float32 // the loop's buffer for log-probabilities
}

type job struct {
	req   Request
	reply chan Result
	start time.Time
}

// New starts an engine on lctx. The engine owns lctx until Close.
func New(lctx *llama.Context, opts Options) (*Engine, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.Parallel > lctx.Sequences() {
		return nil, fmt.Errorf("engine: parallel %d exceeds the context's %d sequences", opts.Parallel, lctx.Sequences())
	}
	if opts.PrefixCache && opts.Parallel+1 > lctx.Sequences() {
		return nil, fmt.Errorf("engine: the prefix cache needs a context of %d sequences (parallel + 1), this one has %d", opts.Parallel+1, lctx.Sequences())
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4 * opts.Parallel
	}
	if opts.SlotContext <= 0 || opts.SlotContext > lctx.ContextSize() {
		opts.SlotContext = lctx.ContextSize() / lctx.Sequences()
	}
	e := &Engine{
		lctx:     lctx,
		model:    lctx.Model(),
		opts:     opts,
		queue:    make(chan *job, opts.QueueSize),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		cacheSeq: llama.SeqID(opts.Parallel),
	}
	go e.loop()
	return e, nil
}

// Parallel is the number of sequences decoded together.
func (e *Engine) Parallel() int { return e.opts.Parallel }

// SlotContext is the number of tokens one request may use in total.
func (e *Engine) SlotContext() int { return e.opts.SlotContext }

// ContextFor is the context size (--ctx) at which each sequence of this
// engine's context would hold perSequence tokens.
func (e *Engine) ContextFor(perSequence int) int { return perSequence * e.lctx.Sequences() }

// Stats returns cumulative counters.
func (e *Engine) Stats() Stats {
	return Stats{
		PromptTokens:    e.promptTokens.Load(),
		CachedTokens:    e.cachedTokens.Load(),
		GeneratedTokens: e.generated.Load(),
		Steps:           e.steps.Load(),
		Completed:       e.completed.Load(),
		Busy:            time.Duration(e.busyNs.Load()),
	}
}

func (e *Engine) validate(req Request) error {
	if len(req.Phases) == 0 {
		return fmt.Errorf("request %s: no phases", req.ID)
	}
	if req.TopLogProbs < 0 || req.TopLogProbs > MaxTopLogProbs {
		return fmt.Errorf("request %s: top log-probs %d: want 0..%d", req.ID, req.TopLogProbs, MaxTopLogProbs)
	}
	for i, p := range req.Phases {
		if p.MaxTokens <= 0 {
			return fmt.Errorf("request %s: phase %d needs MaxTokens > 0", req.ID, i)
		}
	}
	for i, p := range req.Phases {
		if p.Prefix == "" {
			// Every phase needs text to feed: it is what produces the
			// logits the phase starts from.
			return fmt.Errorf("request %s: phase %d has an empty prefix", req.ID, i)
		}
	}
	return nil
}

// Submit queues a request without blocking; it returns ErrQueueFull when the
// queue is full. The result arrives on the returned channel.
func (e *Engine) Submit(req Request) (<-chan Result, error) {
	if err := e.validate(req); err != nil {
		return nil, err
	}
	j := &job{req: req, reply: make(chan Result, 1), start: time.Now()}
	select {
	case <-e.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case e.queue <- j:
		return j.reply, nil
	default:
		return nil, ErrQueueFull
	}
}

// SubmitWait queues a request, waiting for room in the queue until ctx ends.
func (e *Engine) SubmitWait(ctx context.Context, req Request) (<-chan Result, error) {
	if err := e.validate(req); err != nil {
		return nil, err
	}
	j := &job{req: req, reply: make(chan Result, 1), start: time.Now()}
	select {
	case e.queue <- j:
		return j.reply, nil
	case <-e.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Generate runs one request and waits for its result.
func (e *Engine) Generate(ctx context.Context, req Request) (Result, error) {
	if req.Ctx == nil {
		req.Ctx = ctx
	}
	ch, err := e.SubmitWait(ctx, req)
	if err != nil {
		return Result{}, err
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-e.done:
		return Result{}, ErrClosed
	}
}

// Close stops accepting work, cancels queued and running requests, waits for
// the loop to exit and returns. The llama.Context is not closed.
func (e *Engine) Close() {
	e.once.Do(func() { close(e.closing) })
	<-e.done
}
