package engine_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
)

// TestKVCellsStayWithinARow: llama.cpp sizes attention by the highest used
// cell of a stream (padded to 256), so a stream whose cells crept past what
// its request needs (cells not reused from the start after a row, a leftover
// sequence, a prefix copy landing high) makes every step slower at a large
// --ctx. After many rows of varying length, with the prefix cache, stop
// strings and two phases, every stream must hold exactly its request's
// tokens, in cells below what one row needs, plus padding.
func TestKVCellsStayWithinARow(t *testing.T) {
	const parallel, slotCtx = 4, 2048
	lctx, err := model.NewContext(llama.ContextOptions{ContextSize: (parallel + 1) * slotCtx, Sequences: parallel + 1, BatchSize: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	var mu sync.Mutex
	var traces []engine.StepTrace
	e, err := engine.New(lctx, engine.Options{Parallel: parallel, PrefixCache: true, Trace: func(st engine.StepTrace) {
		mu.Lock()
		traces = append(traces, st)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	shared := "<|im_start|>user\n" + strings.Repeat("Write the plan the response follows. ", 3)
	var reqs []engine.Request
	need := 0 // the most tokens one request holds
	for i := 0; i < 40; i++ {
		prompt := shared + fmt.Sprintf("Row %d: %s<|im_end|>\n<|im_start|>assistant\n", i, strings.Repeat("why ", (i*7)%23))
		r := engine.Request{SharedPrefix: shared, Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 4 + (i*13)%60}}}
		if i%3 == 0 {
			r.Phases[0].Stop = []string{"e"}
			r.Phases = append(r.Phases, engine.Phase{Prefix: "\nAnswer:\n", MaxTokens: 10})
		}
		toks, err := model.Tokenize(prompt, true, true)
		if err != nil {
			t.Fatal(err)
		}
		need = max(need, len(toks)+r.Phases[0].MaxTokens+20) // + the second phase
		reqs = append(reqs, r)
	}
	for _, r := range runAll(t, e, reqs) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	e.Close()
	if len(traces) == 0 {
		t.Fatal("no step traced")
	}
	pad := (need + 255) / 256 * 256
	for _, st := range traces {
		if st.NKV > pad {
			t.Errorf("step %d: attention spans %d cells, one row needs at most %d (%d padded)", st.Step, st.NKV, need, pad)
		}
		for _, s := range st.Seqs {
			if s.Cells.Used != s.Pos || s.Cells.Highest > s.Pos {
				t.Errorf("step %d, sequence %d: %d tokens, but %d cells used, highest %d", st.Step, s.Seq, s.Pos, s.Cells.Used, s.Cells.Highest)
			}
			if s.Cells.Size != slotCtx {
				t.Errorf("step %d, sequence %d: stream of %d cells, want %d", st.Step, s.Seq, s.Cells.Size, slotCtx)
			}
		}
	}
	// The streams end empty: nothing left over from any row.
	for s := 0; s < parallel+1; s++ {
		c, err := lctx.KVCells(llama.SeqID(s))
		if err != nil {
			t.Fatal(err)
		}
		if s < parallel && c.Used != 0 {
			t.Errorf("sequence %d: %d cells still used after every request finished", s, c.Used)
		}
	}
}

// TestContextFullIsNotTheLimit: a phase cut because its sequence's share of
// the context filled says so (ContextFull), apart from one that reached its
// own MaxTokens, and a later phase with no room left is marked too.
func TestContextFullIsNotTheLimit(t *testing.T) {
	e := newEngine(t, 2, 2*96, engine.Options{})
	prompt := "<|im_start|>user\nplan the steps<|im_end|>\n<|im_start|>assistant\n"
	toks, err := model.Tokenize(prompt, true, true)
	if err != nil {
		t.Fatal(err)
	}
	res := runAll(t, e, []engine.Request{
		{Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 500}}},
		{Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 5}}},
		{Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 500}, {Prefix: "\nAnswer:\n", MaxTokens: 5}}},
	})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("request %d: %v", i, r.Err)
		}
	}
	full := res[0].Phases[0]
	if slot := e.SlotContext(); full.Finish != engine.FinishLength || !full.ContextFull || full.Tokens >= 500 || len(toks)+full.Tokens > slot {
		t.Errorf("cut by the context: finish %s, context full %v, %d tokens after %d prompt tokens (slot %d)", full.Finish, full.ContextFull, full.Tokens, len(toks), slot)
	}
	if p := res[1].Phases[0]; p.Finish != engine.FinishLength || p.ContextFull || p.Tokens != 5 {
		t.Errorf("cut by its limit: finish %s, context full %v, %d tokens", p.Finish, p.ContextFull, p.Tokens)
	}
	if ph := res[2].Phases; len(ph) != 2 || !ph[0].ContextFull || !ph[1].ContextFull || ph[1].Finish != engine.FinishLength {
		t.Errorf("two phases, first cut by the context: %+v", ph)
	}
}
