package perplexity

import (
	"context"
	"time"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// batcher scores the requests of concurrent rows together, up to the
// scoring context's sequences at a time, so that a run uses them all as
// the grouped loop before it did.
type batcher struct {
	sc   Scorer
	max  int
	in   chan batchJob
	done chan struct{}
}

type batchJob struct {
	reqs []lm.ScoreRequest
	out  chan batchResult
}

type batchResult struct {
	res []lm.Scores
	err error
}

// gather is how long the batcher waits for more rows before scoring a
// group smaller than its sequences.
const gather = 2 * time.Millisecond

func newBatcher(sc Scorer, max int) *batcher {
	b := &batcher{sc: sc, max: max, in: make(chan batchJob), done: make(chan struct{})}
	go b.loop()
	return b
}

func (b *batcher) close() {
	close(b.in)
	<-b.done
}

// score scores one row's requests.
func (b *batcher) score(ctx context.Context, reqs []lm.ScoreRequest) ([]lm.Scores, error) {
	j := batchJob{reqs: reqs, out: make(chan batchResult, 1)}
	select {
	case b.in <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := <-j.out
	return r.res, r.err
}

func (b *batcher) loop() {
	defer close(b.done)
	for j := range b.in {
		group, n := []batchJob{j}, len(j.reqs)
		timer := time.NewTimer(gather)
	collect:
		for n < b.max {
			select {
			case j2, ok := <-b.in:
				if !ok {
					break collect
				}
				group = append(group, j2)
				n += len(j2.reqs)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		b.run(group)
	}
}

// run scores a group; a request too long for a sequence fails only its
// own row (each row is then scored alone).
func (b *batcher) run(group []batchJob) {
	var reqs []lm.ScoreRequest
	for _, j := range group {
		reqs = append(reqs, j.reqs...)
	}
	res, err := b.sc.Score(reqs)
	if err != nil && len(group) > 1 {
		for _, j := range group {
			r, err := b.sc.Score(j.reqs)
			j.out <- batchResult{r, err}
		}
		return
	}
	k := 0
	for _, j := range group {
		if err != nil {
			j.out <- batchResult{nil, err}
			continue
		}
		j.out <- batchResult{res[k : k+len(j.reqs)], nil}
		k += len(j.reqs)
	}
}
