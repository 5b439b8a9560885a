package generate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// echo answers every prompt with its id; prompts containing "huge" are too
// long and "flaky" ones fail once.
type echo struct{ flaky map[string]bool }

func (e *echo) Generate(_ context.Context, req lm.Request) (lm.Result, error) {
	last := req.Phases[0].Prefix
	switch {
	case strings.Contains(last, "huge"):
		return lm.Result{}, fmt.Errorf("%w: 9999 tokens", lm.ErrPromptTooLong)
	case strings.Contains(last, "flaky") && !e.flaky[req.ID]:
		e.flaky[req.ID] = true
		return lm.Result{}, errors.New("decode failed")
	}
	res := lm.Result{ID: req.ID, PromptTokens: 3}
	for range req.Phases {
		res.Phases = append(res.Phases, lm.PhaseOutput{Text: "answer to " + req.ID, Tokens: 2, Finish: lm.FinishStop})
	}
	return res, nil
}

func TestRunWritesResumesAndKeys(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"id":"a","prompt":"add 1 and 2"}`+"\n"+`{"id":"b","prompt":"a huge prompt"}`+"\n"+`{"id":"c","prompt":"flaky one"}`+"\n"), 0o644)
	cfg := Config{
		Input: in, Output: filepath.Join(dir, "out.jsonl"), Workers: 2, Logger: zerolog.Nop(),
		Prompter: planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}},
		Settings: inference.Settings{MaxPlanTokens: 8, MaxTokens: 8}, Model: "m.gguf",
		ModelKey: pipeline.ModelKey{Name: "m.gguf", Fingerprint: "1"},
	}
	gen := &echo{flaky: map[string]bool{}}
	st, err := Run(context.Background(), context.Background(), gen, cfg)
	if err != nil || st.Written != 2 || st.Failed != 1 {
		t.Fatalf("first run: %+v, %v", st, err)
	}
	st, err = Run(context.Background(), context.Background(), gen, cfg)
	if err != nil || st.Written != 1 || st.Resumed != 2 {
		t.Fatalf("rerun: %+v, %v", st, err)
	}
	data, _ := os.ReadFile(cfg.Output)
	if n := strings.Count(string(data), "\n"); n != 3 || !strings.Contains(string(data), `"error":"prompt does not fit`) || !strings.Contains(string(data), `"mode":"codeplan"`) {
		t.Errorf("output (%d rows): %s", n, data)
	}
	// The key comes from the Config itself: another mode is another run.
	cfg.Prompter.Mode = planner.Direct
	if _, err := Run(context.Background(), context.Background(), gen, cfg); !errors.Is(err, dataset.ErrBadOutput) || !strings.Contains(err.Error(), "mode=codeplan") {
		t.Errorf("other mode into the same output: %v", err)
	}
}
