package loglik

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/lm"
)

// The scorer's requests and results are llama/lm's, the cgo-free contract
// the jobs depend on.
type (
	Request = lm.ScoreRequest
	Result  = lm.Scores
	Tally   = lm.Tally
)

// ErrTooLong: a request does not fit in a sequence's window (see llama/lm).
var ErrTooLong = lm.ErrTooLong

// Scorer scores requests on one llama.Context, which it uses exclusively
// while Score runs (it clears the KV cache). Like the Context it is not safe
// for concurrent use.
type Scorer struct {
	ctx    *llama.Context
	batch  *llama.Batch
	bufs   [][]float32 // one logits buffer per position of a block
	window int
}

// NewScorer scores on ctx. Requests are packed into the context's
// sequences, so a context with several sequences scores several requests
// in each decode call; each sequence holds ContextSize/Sequences tokens
// (ContextSize with UnifiedKV is not assumed: the per-sequence share is the
// safe bound in both layouts).
func NewScorer(ctx *llama.Context) (*Scorer, error) {
	if ctx == nil {
		return nil, errors.New("nil context")
	}
	b, err := llama.NewBatch(ctx.BatchSize(), 1)
	if err != nil {
		return nil, err
	}
	return &Scorer{ctx: ctx, batch: b, window: ctx.ContextSize() / ctx.Sequences()}, nil
}

// Window is the most tokens (context plus continuation) one request may hold.
// The last continuation token is never fed to the model, so a request of
// Window+1 tokens also fits.
func (s *Scorer) Window() int { return s.window }

// Close frees the scorer's batch (not the context).
func (s *Scorer) Close() {
	if s.batch != nil {
		s.batch.Close()
		s.batch = nil
	}
}

// Check validates a request without running it: both parts non-empty and
// the fed tokens within the window.
func (s *Scorer) Check(r Request) error {
	switch {
	case len(r.Context) == 0:
		return errors.New("empty context (a text scored from its start needs at least a BOS token before it)")
	case len(r.Continuation) == 0:
		return errors.New("empty continuation")
	}
	if n := len(r.Context) + len(r.Continuation) - 1; n > s.window {
		return fmt.Errorf("%w: %d context + %d continuation tokens need %d positions, a sequence holds %d",
			ErrTooLong, len(r.Context), len(r.Continuation), n, s.window)
	}
	return nil
}

// Score returns one Result per request, in order. Up to Sequences()
// requests are decoded together; the logits of every continuation position
// are requested in the same decode calls, so scoring costs one prompt pass.
func (s *Scorer) Score(reqs []Request) ([]Result, error) {
	if s.batch == nil {
		return nil, fmt.Errorf("scorer %w", llama.ErrClosed)
	}
	for i, r := range reqs {
		if err := s.Check(r); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
	}
	out := make([]Result, len(reqs))
	nSeq := s.ctx.Sequences()
	for start := 0; start < len(reqs); start += nSeq {
		end := min(start+nSeq, len(reqs))
		if err := s.group(reqs[start:end], out[start:end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// slot is where the next scored logits of a batch index go.
type slot struct{ req, tok int }

// group scores up to Sequences() requests, one per sequence, feeding their
// tokens one after the other into batches of BatchSize: short requests
// share a decode call, long ones span several.
func (s *Scorer) group(reqs []Request, out []Result) error {
	s.ctx.ClearKV()
	defer s.ctx.ClearKV()
	for i := range out {
		out[i] = Result{LogProbs: make([]float64, len(reqs[i].Continuation)), Greedy: true}
	}
	var slots []slot
	flush := func() error {
		if s.batch.Len() == 0 {
			return nil
		}
		if err := s.ctx.Decode(s.batch); err != nil {
			return fmt.Errorf("%w", err)
		}
		if err := s.readScores(slots, reqs, out); err != nil {
			return err
		}
		s.batch.Clear()
		slots = slots[:0]
		return nil
	}
	for ri, r := range reqs {
		seq := llama.SeqID(ri)
		// Feed the context and all but the last continuation token; the
		// logits after fed token p predict token p+1.
		fed := len(r.Context) + len(r.Continuation) - 1
		for p := 0; p < fed; p++ {
			var tok llama.Token
			if p < len(r.Context) {
				tok = r.Context[p]
			} else {
				tok = r.Continuation[p-len(r.Context)]
			}
			scored := p >= len(r.Context)-1
			if _, err := s.batch.Add(tok, llama.Pos(p), seq, scored); err != nil {
				return fmt.Errorf("%w", err)
			}
			sl := slot{req: -1}
			if scored {
				sl = slot{req: ri, tok: p - (len(r.Context) - 1)}
			}
			slots = append(slots, sl)
			if s.batch.Len() == s.batch.Cap() {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// parallelVocab is the vocabulary size from which readScores spreads the
// log-softmax over goroutines (below it the work is too small to pay).
var parallelVocab = 16384

// readScores turns the logits of the scored positions of the last decode
// into log-probabilities. With a large vocabulary the log-sum-exp over
// every position costs about as much as a fast GPU's forward pass, so the
// positions are copied out of llama.cpp in blocks (serially) and their
// log-softmax is computed in parallel.
func (s *Scorer) readScores(slots []slot, reqs []Request, out []Result) error {
	workers := 1
	if s.ctx.Model().VocabSize() >= parallelVocab {
		workers = runtime.GOMAXPROCS(0)
	}
	block := 4 * workers
	for len(s.bufs) < block {
		s.bufs = append(s.bufs, nil)
	}
	pending := make([]slot, 0, block)
	greedy := make([]bool, block)
	compute := func() {
		var wg sync.WaitGroup
		for w := 0; w < min(workers, len(pending)); w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for k := w; k < len(pending); k += workers {
					sl := pending[k]
					want := int(reqs[sl.req].Continuation[sl.tok])
					out[sl.req].LogProbs[sl.tok] = LogSoftmax(s.bufs[k], want)
					greedy[k] = Argmax(s.bufs[k]) == want
				}
			}(w)
		}
		wg.Wait()
		for k, sl := range pending {
			if !greedy[k] {
				out[sl.req].Greedy = false
			}
		}
		pending = pending[:0]
	}
	for bi, sl := range slots {
		if sl.req < 0 {
			continue
		}
		var err error
		if s.bufs[len(pending)], err = s.ctx.Logits(bi, s.bufs[len(pending)]); err != nil {
			return fmt.Errorf("%w", err)
		}
		pending = append(pending, sl)
		if len(pending) == block {
			compute()
		}
	}
	compute()
	return nil
}
