package perplexity

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// countingScorer records the size of every Score call.
type countingScorer struct {
	mu    sync.Mutex
	calls []int
	fail  bool
}

func (s *countingScorer) Whole(string) (lm.ScoreRequest, error)         { return lm.ScoreRequest{}, nil }
func (s *countingScorer) Chunks(string, int) ([]lm.ScoreRequest, error) { return nil, nil }
func (s *countingScorer) Pair(string, string) (lm.ScoreRequest, error)  { return lm.ScoreRequest{}, nil }
func (s *countingScorer) Score(reqs []lm.ScoreRequest) ([]lm.Scores, error) {
	s.mu.Lock()
	s.calls = append(s.calls, len(reqs))
	s.mu.Unlock()
	if s.fail && len(reqs) > 1 {
		return nil, lm.ErrTooLong
	}
	out := make([]lm.Scores, len(reqs))
	for i, r := range reqs {
		out[i] = lm.Scores{LogProbs: []float64{-float64(len(r.Continuation))}}
	}
	return out, nil
}

// Rows submitted together are scored in one call of up to max requests,
// and each row gets its own results back.
func TestBatcherGroupsRows(t *testing.T) {
	sc := &countingScorer{}
	b := newBatcher(sc, 4)
	defer b.close()
	var wg sync.WaitGroup
	for i := 1; i <= 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := lm.ScoreRequest{Continuation: make([]llama.Token, i)}
			res, err := b.score(context.Background(), []lm.ScoreRequest{req})
			if err != nil || len(res) != 1 || res[0].LogProbs[0] != -float64(i) {
				t.Errorf("row %d: %+v, %v", i, res, err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range sc.calls {
		total += n
	}
	if total != 4 || len(sc.calls) > 4 {
		t.Errorf("score calls %v", sc.calls)
	}
}

// A group that fails is scored row by row, so one bad row fails alone.
func TestBatcherRetriesRowsAlone(t *testing.T) {
	sc := &countingScorer{fail: true}
	b := newBatcher(sc, 4)
	defer b.close()
	res, err := b.score(context.Background(), []lm.ScoreRequest{{}})
	if err != nil || len(res) != 1 {
		t.Fatalf("one row: %v, %v", res, err)
	}
	if _, err := b.score(context.Background(), []lm.ScoreRequest{{}, {}}); !errors.Is(err, lm.ErrTooLong) {
		t.Errorf("a row of two requests that cannot be scored together: %v", err)
	}
}

// The key names what is scored: another layout is another run.
func TestKeyNamesTheLayout(t *testing.T) {
	text := Config{ModelKey: pipeline.ModelKey{Name: "m.gguf", Fingerprint: "f"}}
	text.Read.PromptField = "text"
	pair := text
	pair.Pair, pair.Read.PromptField, pair.Read.ResponseField = true, "prompt", "response"
	pair.Prompter = planner.Prompter{Mode: planner.Direct, Format: planner.Trained}
	planned := pair
	planned.Prompter.Mode, planned.PlanField = planner.CodePlan, "plan"
	keys := map[string]bool{}
	for _, c := range []Config{text, pair, planned} {
		keys[c.Key().String()] = true
		if c.Key()["model_fingerprint"] != "f" {
			t.Errorf("key without the model: %v", c.Key())
		}
	}
	if len(keys) != 3 {
		t.Errorf("layouts share a key: %v", keys)
	}
	if got := planned.Layout(); got != "response given prompt and plan (plan), codeplan mode, trained format" {
		t.Errorf("layout %q", got)
	}
}
