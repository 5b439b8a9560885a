package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
)

type row struct {
	ID    string `json:"id"`
	Index int64  `json:"index"`
	Text  string `json:"text"`
}

func corpus(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"r%02d","prompt":"p%d","response":"r%d"}`+"\n", i, i, i)
	}
	p := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(p, []byte(b.String()), 0o644)
	return p
}

func TestRunResumeLimitShardAndFailures(t *testing.T) {
	in := corpus(t, 20)
	dir := t.TempDir()
	var calls atomic.Int32
	job := Job{Name: "test", Input: in, Output: filepath.Join(dir, "out.jsonl"), Rejects: filepath.Join(dir, "rej.jsonl"),
		Workers: 3, Logger: zerolog.Nop(),
		Process: func(_ context.Context, r dataset.Row) Outcome {
			calls.Add(1)
			switch {
			case r.ID == "r05" && calls.Load() < 100:
				return Outcome{Err: errors.New("transient")}
			case r.Index%4 == 0:
				return Outcome{Reject: row{ID: r.ID, Index: r.Index, Text: "rejected"}, Tokens: 1}
			}
			return Outcome{Output: row{ID: r.ID, Index: r.Index, Text: r.Prompt}, Tokens: 2, PromptTokens: 3}
		}}
	job.Limit = 8
	st, err := Run(context.Background(), context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if st.Processed+st.Failed != 8 || st.Failed != 1 || st.Rejected != 2 || st.Tokens != 2*5+2 || st.PromptTok != 15 {
		t.Fatalf("first run %+v", st)
	}
	job.Limit = 0
	calls.Store(100) // r05 succeeds from now on
	st, err = Run(context.Background(), context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resumed != 7 || st.Processed != 13 || st.Failed != 0 {
		t.Fatalf("resumed run %+v", st)
	}
	got := map[string]bool{}
	for _, p := range []string{job.Output, job.Rejects} {
		data, _ := os.ReadFile(p)
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			id := l[strings.Index(l, `"id":"`)+6:][:3]
			if got[id] {
				t.Errorf("%s written twice", id)
			}
			got[id] = true
		}
	}
	if len(got) != 20 {
		t.Errorf("%d rows written, want 20", len(got))
	}
	// Shards partition the input.
	total := 0
	for k := 1; k <= 3; k++ {
		sj := job
		sj.Output, sj.Rejects = filepath.Join(dir, fmt.Sprintf("s%d.jsonl", k)), ""
		sj.Shard = dataset.ShardSpec{K: k, N: 3}
		st, err := Run(context.Background(), context.Background(), sj)
		if err != nil {
			t.Fatal(err)
		}
		total += int(st.Processed)
		if st.OtherShards+st.Processed != 20 {
			t.Errorf("shard %d: %+v", k, st)
		}
	}
	if total != 20 {
		t.Errorf("shards processed %d rows, want 20", total)
	}
}

func TestRunSoftCancelStopsFeeding(t *testing.T) {
	in := corpus(t, 50)
	soft, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	st, err := Run(soft, context.Background(), Job{Input: in, Output: filepath.Join(t.TempDir(), "o.jsonl"), Workers: 1, Logger: zerolog.Nop(),
		Process: func(_ context.Context, r dataset.Row) Outcome {
			if n.Add(1) == 3 {
				cancel()
			}
			return Outcome{Output: row{ID: r.ID, Index: r.Index}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Interrupted || st.Written >= 50 || st.Written < 3 {
		t.Errorf("after a soft cancel: %+v", st)
	}
}

func TestRunEmptyInput(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.jsonl")
	os.WriteFile(p, nil, 0o644)
	_, err := Run(context.Background(), context.Background(), Job{Input: p, Output: p + ".out", Logger: zerolog.Nop(),
		Process: func(context.Context, dataset.Row) Outcome { return Outcome{} }})
	if !errors.Is(err, dataset.ErrBadInput) || !strings.Contains(err.Error(), "holds no rows") {
		t.Errorf("empty input: %v", err)
	}
	if _, err := os.Stat(p + ".out"); !os.IsNotExist(err) {
		t.Error("a bad input created the output file")
	}
}

// TestOpenChecksBeforeWork: everything wrong with the files shows in Open,
// before the caller loads a model, and leaves no files behind.
func TestOpenChecksBeforeWork(t *testing.T) {
	dir := t.TempDir()
	in := corpus(t, 3)
	out := filepath.Join(dir, "o.jsonl")
	for name, job := range map[string]Job{
		"missing input":   {Input: filepath.Join(dir, "nope.jsonl"), Output: out},
		"folder input":    {Input: dir, Output: out},
		"input as output": {Input: in, Output: in},
		"bad field":       {Input: in, Output: out, Read: dataset.ReadOptions{PromptField: "nosuch"}},
		"device output":   {Input: in, Output: "/dev/full"},
	} {
		_, err := Open(job)
		var re *dataset.RowError
		if err == nil || !(errors.Is(err, dataset.ErrBadInput) || errors.Is(err, dataset.ErrBadOutput) || errors.As(err, &re)) {
			t.Errorf("%s: err = %v, want a bad input/output error", name, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: output created", name)
		}
	}
	// A batch that never runs (the model failed to load) leaves no files.
	b, err := Open(Job{Input: in, Output: out, Rejects: out + ".rej"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Job{Input: in, Output: out}); err == nil || !strings.Contains(err.Error(), "being written by another codeplan run") {
		t.Errorf("second run on a busy output: %v", err)
	}
	b.Close()
	for _, p := range []string{out, out + ".rej", dataset.LockPath(out)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind by a batch that never ran", p)
		}
	}
}

// TestRunSettingsKeyResume: a rerun with other settings is refused and
// names both; the same settings resume.
func TestRunSettingsKeyResume(t *testing.T) {
	in := corpus(t, 4)
	out := filepath.Join(t.TempDir(), "o.jsonl")
	job := Job{Input: in, Output: out, Logger: zerolog.Nop(), Settings: dataset.Settings{"model": "a@1", "lora": ""},
		Process: func(_ context.Context, r dataset.Row) Outcome { return Outcome{Output: row{ID: r.ID, Index: r.Index}} }}
	if _, err := Run(context.Background(), context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st, err := Run(context.Background(), context.Background(), job)
	if err != nil || st.Resumed != 4 || st.Processed != 0 {
		t.Fatalf("same settings: %+v, %v", st, err)
	}
	job.Settings = dataset.Settings{"model": "a@1", "lora": "x.gguf"}
	_, err = Run(context.Background(), context.Background(), job)
	if !errors.Is(err, dataset.ErrBadOutput) || !strings.Contains(err.Error(), "lora=none") || !strings.Contains(err.Error(), "lora=x.gguf") {
		t.Errorf("other adapter: %v", err)
	}
}

// TestRunStopsOnWriteError: once a row cannot be written, no more rows are
// started (they would be lost work).
func TestRunStopsOnWriteError(t *testing.T) {
	in := corpus(t, 50)
	var n atomic.Int32
	st, err := Run(context.Background(), context.Background(), Job{Input: in, Output: filepath.Join(t.TempDir(), "o.jsonl"), Workers: 1, Logger: zerolog.Nop(),
		Process: func(_ context.Context, r dataset.Row) Outcome {
			n.Add(1)
			if r.Index == 2 {
				return Outcome{Output: map[string]any{"id": r.ID, "index": r.Index, "bad": make(chan int)}}
			}
			return Outcome{Output: row{ID: r.ID, Index: r.Index}}
		}})
	if err == nil || !strings.Contains(err.Error(), "write results") {
		t.Fatalf("err = %v", err)
	}
	if got := n.Load(); got > 5 || st.Written != 2 {
		t.Errorf("after a failed write: %d rows processed, %d written; want it to stop at once with 2 written", got, st.Written)
	}
}

// TestCountLiveFollowsTokensInFlight checks that the progress token count
// follows a live counter while a row is still being generated (a slow
// model's rows take minutes; the rate read 0 until one finished), and that
// stopping adds the last growth.
func TestCountLiveFollowsTokensInFlight(t *testing.T) {
	var generated atomic.Int64
	generated.Store(100) // tokens of an earlier use of the engine: not counted
	var added atomic.Int64
	stop := countLive(func(n int64) { added.Add(n) }, generated.Load)
	generated.Add(7) // a row in flight has generated 7 tokens, none finished
	deadline := time.Now().Add(5 * time.Second)
	for added.Load() != 7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if added.Load() != 7 {
		t.Fatalf("after %v the count is %d, want 7 while the row is in flight", liveTokenPeriod, added.Load())
	}
	generated.Add(5)
	stop()
	if added.Load() != 12 {
		t.Errorf("after stop: %d, want 12", added.Load())
	}
}

// TestRedoCapacity: only rows that record a smaller sequence than this
// run's are redone; rows without seq_ctx, with the same or a larger one,
// and every row when the run's is unknown, stay done.
func TestRedoCapacity(t *testing.T) {
	redo := RedoCapacity(4096)
	for row, want := range map[string]bool{
		`{"id":"a","error":"prompt does not fit","seq_ctx":512}`:  true,
		`{"id":"b","error":"prompt does not fit","seq_ctx":4096}`: false,
		`{"id":"c","error":"prompt does not fit","seq_ctx":8192}`: false,
		`{"id":"d","error":"loglik scoring: no plan"}`:            false,
		`{"id":"e","answer":"4"}`:                                 false,
		`{"id":"f","seq_ctx":"512"}`:                              false,
	} {
		if got := redo([]byte(row)); got != want {
			t.Errorf("%s: redo %v, want %v", row, got, want)
		}
	}
	if RedoCapacity(0) != nil {
		t.Error("an unknown context redoes rows")
	}
}
