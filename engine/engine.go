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
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
)

// FinishReason says why a phase stopped generating.
type FinishReason string

// Finish reasons, with the OpenAI API's names where one exists.
const (
	FinishStop      FinishReason = "stop"      // end-of-generation token or a stop string
	FinishLength    FinishReason = "length"    // hit the phase's token limit: did not terminate
	FinishCancelled FinishReason = "cancelled" // the request's context ended
	FinishError     FinishReason = "error"     // see Result.Err
)

// Phase is one generation stage of a request.
type Phase struct {
	// Prefix is the text fed before this phase generates. For the first
	// phase it is the whole prompt (chat template already applied); for
	// later phases it is appended after the previous phase's output.
	Prefix string
	// MaxTokens limits this phase's generated tokens (required, > 0).
	MaxTokens int
	// Stop strings end the phase; they are not part of the output.
	Stop []string
}

// Request is one unit of work.
type Request struct {
	// ID is echoed in the Result.
	ID string
	// Phases run in order on one sequence (at least one).
	Phases []Phase
	// Sampling for every phase (zero value: greedy).
	Sampling llama.SamplerOptions
	// OnText, if set, receives generated text as it is produced (from the
	// engine's goroutine: return quickly).
	OnText func(phase int, text string)
	// OnPhaseEnd, if set, is called when a phase ends, after its last
	// OnText, with the reason it ended (from the engine's goroutine: return
	// quickly). A chat uses it to say that a plan was cut at its token limit
	// before the answer streams.
	OnPhaseEnd func(phase int, reason FinishReason)
	// Ctx cancels the request (nil = never).
	Ctx context.Context
	// Tag is carried through to the Result untouched, for the caller's
	// bookkeeping (the input row, say).
	Tag any
	// SharedPrefix is text that the first phase's prefix starts with and
	// that many requests share (a chat header and a long instruction, say).
	// With Options.PrefixCache its tokens are computed once and copied into
	// each request's sequence instead of being recomputed.
	SharedPrefix string
	// LogProbs records, for every generated token, its log-probability
	// under the model's raw distribution at that step (before temperature,
	// top-k/p and penalties: the distribution OpenAI's logprobs report),
	// with the TopLogProbs most probable alternatives (0..MaxTopLogProbs).
	LogProbs    bool
	TopLogProbs int
}

// MaxTopLogProbs bounds Request.TopLogProbs (OpenAI's limit is 20).
const MaxTopLogProbs = 20

// TokenLogProb is one generated token with its log-probability (nats).
type TokenLogProb struct {
	Token   llama.Token
	Bytes   []byte // the token's text, possibly part of a UTF-8 character
	LogProb float64
	Top     []TopLogProb // most probable first
}

// TopLogProb is an alternative at one step.
type TopLogProb struct {
	Token   llama.Token
	Bytes   []byte
	LogProb float64
}

// PhaseOutput is what one phase generated.
type PhaseOutput struct {
	Text   string
	Tokens int
	Finish FinishReason
	// LogProbs has one entry per token of Text (with Request.LogProbs);
	// end-of-generation tokens and tokens past a stop string are not in it.
	LogProbs []TokenLogProb
	// ContextFull is set with FinishLength when the phase stopped because
	// its sequence's share of the context (SlotContext) filled before
	// MaxTokens: the context, not the model, ended it.
	ContextFull bool
}

// Result is the outcome of a Request.
type Result struct {
	ID           string
	Tag          any
	Phases       []PhaseOutput
	PromptTokens int // tokens of all prefixes
	CachedTokens int // prompt tokens copied from the prefix cache, not computed
	Err          error
	Elapsed      time.Duration
}

// Text is the concatenated output of every phase.
func (r Result) Text() string {
	var b strings.Builder
	for _, p := range r.Phases {
		b.WriteString(p.Text)
	}
	return b.String()
}

// GeneratedTokens is the number of tokens generated over all phases.
func (r Result) GeneratedTokens() int {
	n := 0
	for _, p := range r.Phases {
		n += p.Tokens
	}
	return n
}

// Errors returned by Submit or carried in Result.Err.
var (
	ErrQueueFull     = errors.New("engine queue is full")
	ErrClosed        = errors.New("engine is closed")
	ErrPromptTooLong = errors.New("prompt does not fit in the context")
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

// Stats are cumulative counters, safe to read while the engine runs.
type Stats struct {
	PromptTokens    int64 // prompt tokens computed
	CachedTokens    int64 // prompt tokens copied from the prefix cache
	GeneratedTokens int64
	Steps           int64
	Completed       int64
	Busy            time.Duration // time spent in decode steps
}

// Generator runs one request to completion: the one generation interface
// of the jobs (generate, eval) and of chat's backend. *Engine implements
// it, and tests substitute a scripted one.
type Generator interface {
	Generate(ctx context.Context, req Request) (Result, error)
}

// The engine is the Generator of local runs.
var _ Generator = (*Engine)(nil)

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
