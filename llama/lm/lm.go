// Package lm is the cgo-free contract between codeplan's jobs and a loaded
// language model: what a generation request and its result look like, the
// one Generator interface, what a log-likelihood request and its scores look
// like, and the errors a caller must tell apart. The runtimes that drive
// llama.cpp (llama/engine, llama/loglik) implement it; the jobs (generate,
// eval, extract, perplexity, serve, chat) are written against it alone, so
// they build without cgo and tests substitute scripted models.
package lm

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/codeplan-dev/codeplan/llama/sampling"
)

// Token is a vocabulary id (llama.Token is the same type).
type Token int32

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

// Request is one unit of generation.
type Request struct {
	// ID is echoed in the Result.
	ID string
	// Phases run in order on one sequence (at least one).
	Phases []Phase
	// Sampling for every phase (zero value: greedy).
	Sampling sampling.Options
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
	// With the engine's prefix cache its tokens are computed once and copied
	// into each request's sequence instead of being recomputed.
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
	Token   Token
	Bytes   []byte // the token's text, possibly part of a UTF-8 character
	LogProb float64
	Top     []TopLogProb // most probable first
}

// TopLogProb is an alternative at one step.
type TopLogProb struct {
	Token   Token
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
	// its sequence's share of the context filled before MaxTokens: the
	// context, not the model, ended it.
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

// Errors of generation, returned by an engine or carried in Result.Err.
var (
	ErrQueueFull     = errors.New("engine queue is full")
	ErrClosed        = errors.New("engine is closed")
	ErrPromptTooLong = errors.New("prompt does not fit in the context")
)

// Permanent reports whether a request failed in a way that retrying the
// same request cannot fix (today: its prompt does not fit in a sequence's
// context). Row loops record such rows as done, with their error, instead
// of retrying them on every rerun; other errors are transient.
func Permanent(err error) bool {
	return errors.Is(err, ErrPromptTooLong)
}

// Generator runs one request to completion: the one generation interface
// of the jobs (generate, eval, extract's local route) and of chat's
// backend. llama/engine's Engine implements it, and tests substitute a
// scripted one.
type Generator interface {
	Generate(ctx context.Context, req Request) (Result, error)
}

// Stats are an engine's cumulative counters, safe to read while it runs.
type Stats struct {
	PromptTokens    int64 // prompt tokens computed
	CachedTokens    int64 // prompt tokens copied from the prefix cache
	GeneratedTokens int64
	Steps           int64
	Completed       int64
	Busy            time.Duration // time spent in decode steps
}

// BatchedResult is one row of a batched benchmark, as llama.cpp's
// batched-bench prints it: Parallel sequences each process a prompt of
// PromptTokens tokens, then generate GenTokens tokens one step at a time.
type BatchedResult struct {
	Parallel     int
	PromptTokens int
	GenTokens    int
	PromptTime   time.Duration
	GenTime      time.Duration
}

// PromptTokensPerSecond is prompt-processing throughput over all sequences.
func (r BatchedResult) PromptTokensPerSecond() float64 {
	return float64(r.Parallel*r.PromptTokens) / r.PromptTime.Seconds()
}

// GenTokensPerSecond is generation throughput over all sequences.
func (r BatchedResult) GenTokensPerSecond() float64 {
	return float64(r.Parallel*r.GenTokens) / r.GenTime.Seconds()
}

// ErrTooLong is returned (wrapped, with the numbers) when a scoring
// request's context plus its continuation does not fit in the window one
// sequence of the scoring context holds. Scoring never truncates silently:
// a truncated context would score a different question.
var ErrTooLong = errors.New("text longer than the context window")

// ScoreRequest is one continuation to score after a context.
type ScoreRequest struct {
	// Context is fed first and not scored. It must hold at least one token
	// (the BOS token, for a text scored from its start on a model that
	// adds one), because the first scored token needs logits before it.
	Context []Token
	// Continuation tokens are each scored given everything before them.
	Continuation []Token
}

// Scores holds the scores of one ScoreRequest's continuation.
type Scores struct {
	// LogProbs[i] is log P(Continuation[i] | Context, Continuation[:i]) in nats.
	LogProbs []float64
	// Greedy is true when every continuation token was the most probable
	// token at its position (lm-evaluation-harness's is_greedy).
	Greedy bool
}

// Sum is the total log-likelihood of the continuation.
func (r Scores) Sum() float64 {
	s := 0.0
	for _, v := range r.LogProbs {
		s += v
	}
	return s
}

// Mean is the mean log-likelihood per token (NaN for no tokens).
func (r Scores) Mean() float64 {
	if len(r.LogProbs) == 0 {
		return math.NaN()
	}
	return r.Sum() / float64(len(r.LogProbs))
}

// Perplexity is exp(-Mean).
func (r Scores) Perplexity() float64 { return math.Exp(-r.Mean()) }

// Tally sums log-likelihood over scored tokens, for a perplexity over many
// results (llama-perplexity's overall figure is exp of the mean over all
// tokens, not a mean of per-chunk perplexities).
type Tally struct {
	LogLik float64 // total log-likelihood, nats (≤ 0)
	Tokens int
}

// Add counts every token of r.
func (t *Tally) Add(r Scores) {
	t.LogLik += r.Sum()
	t.Tokens += len(r.LogProbs)
}

// Merge adds another tally.
func (t *Tally) Merge(o Tally) {
	t.LogLik += o.LogLik
	t.Tokens += o.Tokens
}

// Perplexity is exp(-LogLik/Tokens) (NaN for no tokens).
func (t Tally) Perplexity() float64 {
	if t.Tokens == 0 {
		return math.NaN()
	}
	return math.Exp(-t.LogLik / float64(t.Tokens))
}
