package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate/evaltest"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// scripted answers like a model that is always right in direct mode, never
// in nlplan mode, and right in codeplan mode except for truth puzzles. It
// records every prompt.
type scripted struct {
	gold    map[string]string
	calls   atomic.Int32
	mu      sync.Mutex
	prompts map[string]string
	// before, if set, runs at the start of every call (to cancel a run
	// midway) and may replace the result.
	before func(n int32, req lm.Request) (lm.Result, error, bool)
}

func newScripted(items []benchdata.Item) *scripted {
	s := &scripted{gold: map[string]string{}, prompts: map[string]string{}}
	for _, it := range items {
		s.gold[it.ID] = it.Gold
	}
	return s
}

func (s *scripted) Generate(ctx context.Context, req lm.Request) (lm.Result, error) {
	n := s.calls.Add(1)
	s.mu.Lock()
	s.prompts[req.ID] = req.Phases[0].Prefix
	s.mu.Unlock()
	if s.before != nil {
		if r, err, ok := s.before(n, req); ok {
			return r, err
		}
	}
	return evaltest.Answer(s.gold, req), nil
}

func testConfig(t *testing.T, items []benchdata.Item) Config {
	t.Helper()
	return Config{
		Items: items, Modes: planner.Modes(), Dir: t.TempDir(), Workers: 3,
		Prompter: planner.Prompter{Format: planner.Prompted, Chat: planner.ChatML{}},
		Settings: inference.Settings{MaxPlanTokens: 16, MaxTokens: 16},
		Model:    "fake.gguf", Logger: zerolog.Nop(),
	}
}

func testItems(t *testing.T, n int) []benchdata.Item {
	t.Helper()
	loaded, err := LoadItems(Source{Bench: "synth", Steps: []int{1, 3}, PerCell: n})
	if err != nil {
		t.Fatal(err)
	}
	return loaded.Items
}

func TestRunScoresEveryMode(t *testing.T) {
	items := testItems(t, 1) // 10 items
	cfg := testConfig(t, items)
	gen := newScripted(items)
	st, err := Run(context.Background(), context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pairs != 30 || st.Written != 30 || st.Failed != 0 || st.Resumed != 0 || st.Interrupted {
		t.Fatalf("stats %+v", st)
	}
	rows, err := ReadRows(filepath.Join(cfg.Dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 30 {
		t.Fatalf("%d rows, want 30", len(rows))
	}
	indexes := map[int64]bool{}
	for _, r := range rows {
		if r.ID != RowID(r.ItemID, r.Mode) || r.Question == "" || r.Gold == "" || r.Steps == 0 || r.Kind == "" ||
			r.Format != planner.Prompted || r.Model != "fake.gguf" || r.Finish != "stop" {
			t.Errorf("row %+v", r)
		}
		if indexes[r.Index] {
			t.Errorf("index %d used twice", r.Index)
		}
		indexes[r.Index] = true
		wantCorrect := r.Mode == planner.Direct || (r.Mode == planner.CodePlan && !strings.Contains(r.ItemID, "truth"))
		if r.Correct != wantCorrect {
			t.Errorf("%s: correct=%v (extracted %q, gold %q)", r.ID, r.Correct, r.Extracted, r.Gold)
		}
		if (r.Plan != "") != r.Mode.HasPlan() || (r.PlanTokens > 0) != r.Mode.HasPlan() {
			t.Errorf("%s: plan %q, %d plan tokens", r.ID, r.Plan, r.PlanTokens)
		}
	}
	// The same question and answer-format hint reach the model in every
	// mode; only the plan instruction differs.
	for _, it := range items {
		for _, m := range planner.Modes() {
			p := gen.prompts[RowID(it.ID, m)]
			if !strings.Contains(p, planner.UserMessage(it.Question, it.Kind)) {
				t.Errorf("%s prompt lacks the user message: %q", m, p)
			}
			if strings.Contains(p, planner.CodePlanInstruction) != (m == planner.CodePlan) {
				t.Errorf("%s prompt and the codeplan instruction: %q", m, p)
			}
		}
	}

	// The report built from these rows is checked in package report
	// (TestBuildReportOfAnEvalRun).
}

// A run cancelled midway (Ctrl-C) finishes what is in flight, and the
// rerun does exactly the rest.
func TestRunResumesAfterSoftCancel(t *testing.T) {
	items := testItems(t, 2) // 20 items, 60 pairs
	cfg := testConfig(t, items)
	cfg.Modes = []planner.Mode{planner.Direct, planner.CodePlan}
	soft, cancel := context.WithCancel(context.Background())
	gen := newScripted(items)
	gen.before = func(n int32, _ lm.Request) (lm.Result, error, bool) {
		if n == 7 {
			cancel()
		}
		return lm.Result{}, nil, false
	}
	st, err := Run(soft, context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Interrupted || st.Written < 7 || st.Written >= 40 || st.Failed != 0 {
		t.Fatalf("first run %+v", st)
	}
	first := st.Written
	gen.before = nil
	st, err = Run(context.Background(), context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resumed != first || st.Written != 40-first || st.Interrupted {
		t.Fatalf("rerun %+v after %d rows", st, first)
	}
	checkOnce(t, cfg.Dir, 40)
	// Adding a mode later runs only that mode.
	cfg.Modes = planner.Modes()
	st, err = Run(context.Background(), context.Background(), gen, cfg)
	if err != nil || st.Written != 20 || st.Resumed != 40 {
		t.Fatalf("third run %+v, %v", st, err)
	}
	checkOnce(t, cfg.Dir, 60)
}

func checkOnce(t *testing.T, dir string, want int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r Row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		seen[r.ID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s written %d times", id, n)
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct rows, want %d", len(seen), want)
	}
}

// Transient failures are redone by the next run; prompts that cannot fit
// are written once as wrong answers and never retried.
func TestRunFailuresAndErrors(t *testing.T) {
	items := testItems(t, 1)[:4]
	cfg := testConfig(t, items)
	cfg.Modes = []planner.Mode{planner.Direct}
	gen := newScripted(items)
	gen.before = func(_ int32, req lm.Request) (lm.Result, error, bool) {
		switch req.ID {
		case RowID(items[0].ID, planner.Direct):
			return lm.Result{}, errors.New("decode failed"), true
		case RowID(items[1].ID, planner.Direct):
			return lm.Result{}, fmt.Errorf("%w: 5000 tokens", lm.ErrPromptTooLong), true
		}
		return lm.Result{}, nil, false
	}
	st, err := Run(context.Background(), context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 3 || st.Errors != 1 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	gen.before = nil
	st, err = Run(context.Background(), context.Background(), gen, cfg)
	if err != nil || st.Written != 1 || st.Resumed != 3 {
		t.Fatalf("rerun %+v, %v", st, err)
	}
	rows, err := ReadRows(filepath.Join(cfg.Dir, ResultsFile))
	errs, correct := 0, 0
	for _, r := range rows {
		if r.Error != "" {
			errs++
		}
		if r.Correct {
			correct++
		}
	}
	if err != nil || len(rows) != 4 || errs != 1 || correct != 3 {
		t.Fatalf("%d rows, %d errors, %d correct, %v", len(rows), errs, correct, err)
	}
	// The report of such rows (the mode the item could not run in named
	// in its header) is checked in package report
	// (TestReportNamesItemsThatCouldNotRun).
}

// Limit takes the first items of the shard, whatever was done before.
func TestRunShardAndLimit(t *testing.T) {
	items := testItems(t, 2)
	cfg := testConfig(t, items)
	cfg.Modes = []planner.Mode{planner.Direct}
	cfg.Shard = dataset.ShardSpec{K: 2, N: 3}
	cfg.Limit = 3
	st, err := Run(context.Background(), context.Background(), newScripted(items), cfg)
	if err != nil || st.Pairs != 3 || st.Written != 3 {
		t.Fatalf("%+v, %v", st, err)
	}
	rows, _ := ReadRows(filepath.Join(cfg.Dir, ResultsFile))
	var want []string
	for _, it := range items {
		if cfg.Shard.Keep(it.ID) && len(want) < 3 {
			want = append(want, it.ID)
		}
	}
	for _, r := range rows {
		if !strings.Contains(strings.Join(want, " "), r.ItemID) {
			t.Errorf("row for %s, want only %v", r.ItemID, want)
		}
	}
}

func TestReadRows(t *testing.T) {
	dir := t.TempDir()
	good := `{"id":"a|direct","item_id":"a","mode":"direct","index":0,"correct":true}`
	tests := []struct {
		name, content string
		want          int
		wantErr       string
	}{
		{name: "torn last line", content: good + "\n" + `{"id":"b|dir`, want: 1},
		{name: "blank lines and a duplicate", content: "\n" + good + "\n\n" + good + "\n", want: 1},
		{name: "bad middle line", content: good + "\nnot json\n" + good + "\n", wantErr: "bad.jsonl:2:"},
		{name: "no mode", content: `{"id":"a","item_id":"a"}` + "\n", wantErr: `missing "id", "item_id" or "mode"`},
		{name: "unknown mode", content: `{"id":"a","item_id":"a","mode":"think"}` + "\n", wantErr: "unknown mode"},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(p, []byte(tc.content), 0o644)
		rows, err := ReadRows(p)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(rows) != tc.want {
			t.Errorf("%s: %d rows, %v", tc.name, len(rows), err)
		}
	}
}
