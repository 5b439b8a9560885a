package extract

import (
	"context"
	"fmt"

	"github.com/codeplan-dev/codeplan/planner"
)

// Halter is implemented by generators that can fail for good in the middle
// of a run, such as a serving fleet that is gone: Run then stops at once
// instead of failing every remaining row in turn. Down is closed when that
// happens and Err says why.
type Halter interface {
	Down() <-chan struct{}
	Err() error
}

// Down implements Halter: closed when no server of the fleet can be reached.
func (r Remote) Down() <-chan struct{} { return r.Client.Down() }

// Err implements Halter.
func (r Remote) Err() error { return r.Client.Err() }

// watchHalt derives soft and hard contexts that are both cancelled when gen
// halts: no new rows are read, and the rows in flight are dropped (they
// could not finish; the next run redoes them). The returned generator
// cancels them before a failure caused by the halt reaches the row loop, so
// that the loop sees a stopped run rather than one row failure each. The
// returned function ends the watch and reports the halt, if any, as the
// run's error.
func watchHalt(soft, hard context.Context, gen Generator) (context.Context, context.Context, Generator, func() error) {
	h, ok := gen.(Halter)
	if !ok {
		return soft, hard, gen, func() error { return nil }
	}
	soft, cancelSoft := context.WithCancel(soft)
	hard, cancelHard := context.WithCancel(hard)
	stop := func() {
		cancelSoft()
		cancelHard()
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-h.Down():
			stop()
		case <-done:
		}
	}()
	return soft, hard, haltingGenerator{gen, h, stop}, func() error {
		close(done)
		cancelSoft()
		cancelHard()
		if err := h.Err(); err != nil {
			return fmt.Errorf("run stopped: %w; the rows finished so far are saved, rerun the same command to do the rest", err)
		}
		return nil
	}
}

// haltingGenerator stops the run (see watchHalt) when a row fails because
// the generator halted.
type haltingGenerator struct {
	Generator
	h    Halter
	stop func()
}

// Generate implements Generator.
func (g haltingGenerator) Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	out, err := g.Generator.Generate(ctx, id, msgs, maxTokens)
	if err != nil && g.h.Err() != nil {
		g.stop()
	}
	return out, err
}
