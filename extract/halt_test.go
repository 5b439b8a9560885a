package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/planner"
)

// haltingFake answers `ok` rows, then halts for good (as a fleet that is
// gone): every later call fails with its error.
type haltingFake struct {
	mu    sync.Mutex
	ok    int
	calls int
	down  chan struct{}
	once  sync.Once
}

var errGone = errors.New("fleet gone")

func (h *haltingFake) Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	if n > h.ok {
		h.once.Do(func() { close(h.down) })
		return Generation{}, errGone
	}
	return Generation{Text: "```python\ndef solve(q):\n    values = read_numbers(q)\n    return add(values)\n```", Tokens: 10}, nil
}

func (h *haltingFake) Down() <-chan struct{} { return h.down }

func (h *haltingFake) Err() error {
	select {
	case <-h.down:
		return errGone
	default:
		return nil
	}
}

// TestRunStopsWhenGeneratorHalts: a generator that halts stops the run at
// once with its error; the rows done are written, no row is reported as a
// failure of its own, and the rest are never sent.
func TestRunStopsWhenGeneratorHalts(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, `{"id":"r%d","prompt":"What is %d plus 3?","response":"Add them. The answer is %d."}`+"\n", i, i, i+3)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	var logs bytes.Buffer
	cfg := Config{Input: in, Output: filepath.Join(dir, "out.jsonl"), Workers: 4, Logger: zerolog.New(&logs)}
	gen := &haltingFake{ok: 10, down: make(chan struct{})}
	sum, err := Run(context.Background(), context.Background(), gen, cfg)
	if !errors.Is(err, errGone) || !strings.Contains(err.Error(), "rerun the same command") {
		t.Fatalf("error %v, want the halt", err)
	}
	if got := len(lines(t, cfg.Output)); got != 10 || sum.Written != 10 {
		t.Errorf("%d rows written (summary %d), want 10", got, sum.Written)
	}
	if strings.Contains(logs.String(), "row failed") {
		t.Errorf("rows reported one by one:\n%s", logs.String())
	}
	if gen.calls > 10+cfg.Workers {
		t.Errorf("%d rows sent after the halt, want at most the %d workers'", gen.calls-10, cfg.Workers)
	}
}
