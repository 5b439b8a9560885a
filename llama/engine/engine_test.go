package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
)

var model *llama.Model

func TestMain(m *testing.M) { testmodel.Main(m, &model) }

// engineContext makes a context for tests, closed at the end of the test.
func engineContext(t testing.TB, parallel, ctxSize int) *llama.Context {
	t.Helper()
	// One thread: test binaries run in parallel on small CI machines, and
	// ggml's spinning worker threads slow down badly when oversubscribed.
	lctx, err := model.NewContext(llama.ContextOptions{ContextSize: ctxSize, Sequences: parallel, BatchSize: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lctx.Close() })
	return lctx
}

func newEngine(t testing.TB, parallel, ctxSize int, opts engine.Options) *engine.Engine {
	t.Helper()
	lctx := engineContext(t, parallel, ctxSize)
	opts.Parallel = parallel
	e, err := engine.New(lctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close) // registered after the context's cleanup, so it runs first
	return e
}

func prompts(n int) []string {
	out := make([]string, n)
	for i := range out {
		// Different lengths, so prompts finish prefill at different steps.
		out[i] = fmt.Sprintf("<|im_start|>user\nRow %d: %s<|im_end|>\n<|im_start|>assistant\n", i, strings.Repeat("plan the steps ", i%5+1))
	}
	return out
}

func runAll(t *testing.T, e *engine.Engine, reqs []engine.Request) []engine.Result {
	t.Helper()
	chans := make([]<-chan engine.Result, len(reqs))
	for i, r := range reqs {
		ch, err := e.SubmitWait(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
	}
	out := make([]engine.Result, len(reqs))
	for i, ch := range chans {
		out[i] = <-ch
	}
	return out
}

// TestParallelEqualsSequential: greedy output must not depend on how many
// sequences share the batch (the issue's --parallel 1 vs 8 requirement).
func TestParallelEqualsSequential(t *testing.T) {
	ps := prompts(12)
	mk := func() []engine.Request {
		reqs := make([]engine.Request, len(ps))
		for i, p := range ps {
			reqs[i] = engine.Request{ID: fmt.Sprint(i), Phases: []engine.Phase{{Prefix: p, MaxTokens: 20 + i}}}
		}
		return reqs
	}
	one := runAll(t, newEngine(t, 1, 1024, engine.Options{}), mk())
	eight := runAll(t, newEngine(t, 8, 8*1024, engine.Options{}), mk())
	for i := range ps {
		if one[i].Err != nil || eight[i].Err != nil {
			t.Fatalf("row %d: errors %v / %v", i, one[i].Err, eight[i].Err)
		}
		if one[i].Text() != eight[i].Text() {
			t.Errorf("row %d differs:\n p1: %q\n p8: %q", i, one[i].Text(), eight[i].Text())
		}
		if one[i].Phases[0].Finish != engine.FinishLength || one[i].GeneratedTokens() != 20+i {
			t.Errorf("row %d: finish %s after %d tokens", i, one[i].Phases[0].Finish, one[i].GeneratedTokens())
		}
		if one[i].ID != fmt.Sprint(i) {
			t.Errorf("result %d has id %s", i, one[i].ID)
		}
	}
}

// TestPhasesContinueTheSequence: the second phase must see exactly the text
// of phase one (cut at its stop string) plus its own prefix, the same as a
// fresh request with that text as the prompt.
func TestPhasesContinueTheSequence(t *testing.T) {
	e := newEngine(t, 2, 2048, engine.Options{})
	prompt := prompts(1)[0]
	free, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 40}}})
	if err != nil {
		t.Fatal(err)
	}
	out := free.Text()
	// Pick a stop string that occurs in the middle of the free-running output.
	stop := out[15:17]
	if i := strings.Index(out, stop); i < 15 {
		stop = out[i : i+2]
	}
	cut := out[:strings.Index(out, stop)]
	two, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{
		{Prefix: prompt, MaxTokens: 40, Stop: []string{stop}},
		{Prefix: "\nAnswer:\n", MaxTokens: 24},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if two.Phases[0].Text != cut || two.Phases[0].Finish != engine.FinishStop {
		t.Fatalf("phase 1 = %q (%s), want %q", two.Phases[0].Text, two.Phases[0].Finish, cut)
	}
	fresh, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: prompt + cut + "\nAnswer:\n", MaxTokens: 24}}})
	if err != nil {
		t.Fatal(err)
	}
	if two.Phases[1].Text != fresh.Text() {
		t.Errorf("phase 2 = %q, fresh = %q", two.Phases[1].Text, fresh.Text())
	}
	// A phase that ends by length carries its last token into the cache too.
	lenTwo, _ := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{
		{Prefix: prompt, MaxTokens: 10},
		{Prefix: "\nAnswer:\n", MaxTokens: 12},
	}})
	fresh2, _ := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: prompt + lenTwo.Phases[0].Text + "\nAnswer:\n", MaxTokens: 12}}})
	if lenTwo.Phases[0].Finish != engine.FinishLength || lenTwo.Phases[1].Text != fresh2.Text() {
		t.Errorf("after a length stop: phase 2 %q, fresh %q", lenTwo.Phases[1].Text, fresh2.Text())
	}
}

func TestStreamingMatchesResult(t *testing.T) {
	e := newEngine(t, 1, 1024, engine.Options{})
	var mu sync.Mutex
	var got [2]strings.Builder
	res, err := e.Generate(context.Background(), engine.Request{
		Phases: []engine.Phase{{Prefix: prompts(1)[0], MaxTokens: 30, Stop: []string{"zz"}}, {Prefix: "\nAnswer:", MaxTokens: 10}},
		OnText: func(phase int, text string) { mu.Lock(); got[phase].WriteString(text); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Phases {
		if got[i].String() != res.Phases[i].Text {
			t.Errorf("phase %d streamed %q, result %q", i, got[i].String(), res.Phases[i].Text)
		}
	}
}

// TestOnPhaseEnd checks that each phase's end is reported once, with its
// reason, after all of its text and before any text of the next phase.
func TestOnPhaseEnd(t *testing.T) {
	e := newEngine(t, 1, 1024, engine.Options{})
	var mu sync.Mutex
	var events []string
	res, err := e.Generate(context.Background(), engine.Request{
		Phases: []engine.Phase{{Prefix: prompts(1)[0], MaxTokens: 4}, {Prefix: "\nAnswer:", MaxTokens: 3}},
		OnText: func(phase int, text string) {
			mu.Lock()
			events = append(events, fmt.Sprintf("text%d", phase))
			mu.Unlock()
		},
		OnPhaseEnd: func(phase int, reason engine.FinishReason) {
			mu.Lock()
			events = append(events, fmt.Sprintf("end%d:%s", phase, reason))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ends []string
	lastText0, firstText1, end0 := -1, len(events), -1
	for i, ev := range events {
		switch {
		case strings.HasPrefix(ev, "end"):
			ends = append(ends, ev)
			if strings.HasPrefix(ev, "end0") {
				end0 = i
			}
		case ev == "text0":
			lastText0 = i
		case ev == "text1" && i < firstText1:
			firstText1 = i
		}
	}
	want := []string{"end0:" + string(res.Phases[0].Finish), "end1:" + string(res.Phases[1].Finish)}
	if fmt.Sprint(ends) != fmt.Sprint(want) || res.Phases[0].Finish != engine.FinishLength {
		t.Fatalf("phase ends %v, want %v (phase 0 should stop at its 4-token limit)", ends, want)
	}
	if end0 < lastText0 || end0 > firstText1 {
		t.Errorf("phase 0's end is not between its text and the next phase's: %v", events)
	}
}

func TestPromptTooLong(t *testing.T) {
	e := newEngine(t, 2, 256, engine.Options{})
	long := strings.Repeat("x", e.SlotContext()+10)
	res, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: long, MaxTokens: 5}}})
	if !errors.Is(err, engine.ErrPromptTooLong) || !errors.Is(res.Err, engine.ErrPromptTooLong) {
		t.Fatalf("want ErrPromptTooLong, got %v", err)
	}
	// The engine keeps working afterwards, and generation near the end of a
	// slot stops with "length" instead of overflowing.
	near := e.SlotContext() - 20 // one token per byte in the tiny model
	res, err = e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: strings.Repeat("y", near), MaxTokens: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Phases[0].Finish != engine.FinishLength || res.GeneratedTokens() >= 100 {
		t.Errorf("near the slot end: %s after %d tokens", res.Phases[0].Finish, res.GeneratedTokens())
	}
}

func TestCancelFreesSlot(t *testing.T) {
	e := newEngine(t, 1, 4096, engine.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	ch, err := e.Submit(engine.Request{Ctx: ctx, Phases: []engine.Phase{{Prefix: "hello", MaxTokens: 4000}},
		OnText: func(int, string) {
			select {
			case started <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	select {
	case r := <-ch:
		if !errors.Is(r.Err, context.Canceled) || r.Phases[len(r.Phases)-1].Finish != engine.FinishCancelled {
			t.Errorf("cancelled result: %v %+v", r.Err, r.Phases)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancel did not end the request")
	}
	// The single slot is free again.
	if _, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: "next", MaxTokens: 3}}}); err != nil {
		t.Fatal(err)
	}
}

func TestQueueFullAndValidation(t *testing.T) {
	e := newEngine(t, 1, 4096, engine.Options{QueueSize: 1})
	long := engine.Request{Phases: []engine.Phase{{Prefix: "busy", MaxTokens: 2000}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long.Ctx = ctx
	var chans []<-chan engine.Result
	full := false
	for i := 0; i < 5; i++ {
		ch, err := e.Submit(long)
		if errors.Is(err, engine.ErrQueueFull) {
			full = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	if !full {
		t.Error("queue of 1 never reported full")
	}
	cancel()
	for _, ch := range chans {
		<-ch
	}
	if _, err := e.Submit(engine.Request{}); err == nil {
		t.Error("request without phases accepted")
	}
	if _, err := e.Submit(engine.Request{Phases: []engine.Phase{{Prefix: "x"}}}); err == nil {
		t.Error("phase without MaxTokens accepted")
	}
	if _, err := e.Submit(engine.Request{Phases: []engine.Phase{{Prefix: "x", MaxTokens: 1}, {MaxTokens: 1}}}); err == nil {
		t.Error("later phase without prefix accepted")
	}
}

func TestCloseAnswersEverything(t *testing.T) {
	lctx, _ := model.NewContext(llama.ContextOptions{ContextSize: 2048, Sequences: 2, Threads: 1})
	defer lctx.Close()
	e, _ := engine.New(lctx, engine.Options{Parallel: 2, QueueSize: 8})
	var chans []<-chan engine.Result
	for i := 0; i < 6; i++ {
		ch, err := e.Submit(engine.Request{Phases: []engine.Phase{{Prefix: "work", MaxTokens: 900}}})
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	e.Close()
	for i, ch := range chans {
		select {
		case r := <-ch:
			if r.Err == nil && r.GeneratedTokens() < 900 {
				t.Errorf("request %d: no error after close but only %d tokens", i, r.GeneratedTokens())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d never answered after Close", i)
		}
	}
	if _, err := e.Submit(engine.Request{Phases: []engine.Phase{{Prefix: "late", MaxTokens: 1}}}); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("submit after close: %v", err)
	}
}

// TestPrefixCacheGivesTheSameOutput: requests that share a long instruction
// must generate exactly what they generate without the cache, while the
// shared tokens are computed once.
func TestPrefixCacheGivesTheSameOutput(t *testing.T) {
	shared := "<|im_start|>user\n" + strings.Repeat("Write the plan the response follows. ", 6)
	mk := func(withShared bool) []engine.Request {
		var reqs []engine.Request
		for i := 0; i < 6; i++ {
			r := engine.Request{Phases: []engine.Phase{{Prefix: shared + fmt.Sprintf("Question %d: %s<|im_end|>\n<|im_start|>assistant\n", i, strings.Repeat("why ", i)), MaxTokens: 16}}}
			if withShared {
				r.SharedPrefix = shared
			}
			reqs = append(reqs, r)
		}
		// One request whose "shared" prefix is not a prefix: no cache use.
		reqs = append(reqs, engine.Request{SharedPrefix: "something else entirely, long enough to count",
			Phases: []engine.Phase{{Prefix: "plain prompt without the instruction", MaxTokens: 16}}})
		return reqs
	}
	plain := runAll(t, newEngine(t, 2, 2*1024, engine.Options{}), mk(false))
	for _, unified := range []bool{false, true} {
		lctx, err := model.NewContext(llama.ContextOptions{ContextSize: 3 * 1024, Sequences: 3, BatchSize: 256, Threads: 1, UnifiedKV: unified})
		if err != nil {
			t.Fatal(err)
		}
		defer lctx.Close()
		cached, err := engine.New(lctx, engine.Options{Parallel: 2, PrefixCache: true, SlotContext: 1024})
		if err != nil {
			t.Fatal(err)
		}
		defer cached.Close()
		checkPrefixCache(t, shared, cached, runAll(t, cached, mk(true)), plain)
	}
	if _, err := engine.New(engineContext(t, 2, 2048), engine.Options{Parallel: 2, PrefixCache: true}); err == nil {
		t.Error("prefix cache without a spare sequence accepted")
	}
}

func checkPrefixCache(t *testing.T, shared string, cached *engine.Engine, got, plain []engine.Result) {
	t.Helper()
	for i := range got {
		if got[i].Err != nil || got[i].Text() != plain[i].Text() {
			t.Errorf("request %d: cached %q (%v), plain %q", i, got[i].Text(), got[i].Err, plain[i].Text())
		}
	}
	sharedToks, _ := model.Tokenize(shared, true, true)
	st := cached.Stats()
	if want := int64(6 * len(sharedToks)); st.CachedTokens != want {
		t.Errorf("cached tokens %d, want %d", st.CachedTokens, want)
	}
	if got[0].CachedTokens != len(sharedToks) || got[6].CachedTokens != 0 {
		t.Errorf("per-request cached tokens %d / %d", got[0].CachedTokens, got[6].CachedTokens)
	}
}

// TestPhaseCutsRandomized checks the cache bookkeeping of endPhase across
// many random stop strings and limits, with four sequences interleaved: the
// second phase must always equal a fresh run on the text the first phase
// kept. (The tiny model's vocabulary is byte-level, so re-tokenising the
// concatenated text gives the same tokens.)
func TestPhaseCutsRandomized(t *testing.T) {
	e := newEngine(t, 4, 4*1024, engine.Options{})
	rng := rand.New(rand.NewPCG(7, 11))
	base := prompts(6)
	// Learn what free-running generation looks like, to pick stop strings
	// that actually occur.
	free := make([]string, len(base))
	for i, p := range base {
		r, err := e.Generate(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: p, MaxTokens: 60}}})
		if err != nil {
			t.Fatal(err)
		}
		free[i] = r.Text()
	}
	type tc struct {
		prompt, stop string
		limit        int
	}
	var cases []tc
	for k := 0; k < 24; k++ {
		i := rng.IntN(len(base))
		c := tc{prompt: base[i], limit: 5 + rng.IntN(50)}
		if out := free[i]; rng.IntN(4) > 0 && len(out) > 4 {
			at := rng.IntN(len(out) - 3)
			c.stop = out[at : at+1+rng.IntN(3)]
		}
		cases = append(cases, c)
	}
	reqs := make([]engine.Request, len(cases))
	for k, c := range cases {
		var stop []string
		if c.stop != "" {
			stop = []string{c.stop}
		}
		reqs[k] = engine.Request{Phases: []engine.Phase{{Prefix: c.prompt, MaxTokens: c.limit, Stop: stop}, {Prefix: "\nAnswer:\n", MaxTokens: 12}}}
	}
	two := runAll(t, e, reqs)
	fresh := make([]engine.Request, len(cases))
	for k, c := range cases {
		fresh[k] = engine.Request{Phases: []engine.Phase{{Prefix: c.prompt + two[k].Phases[0].Text + "\nAnswer:\n", MaxTokens: 12}}}
	}
	want := runAll(t, e, fresh)
	for k := range cases {
		if two[k].Err != nil || want[k].Err != nil {
			t.Fatalf("case %d: %v / %v", k, two[k].Err, want[k].Err)
		}
		if c := cases[k]; c.stop != "" && strings.Contains(two[k].Phases[0].Text, c.stop) {
			t.Errorf("case %d: phase 1 %q still contains its stop %q", k, two[k].Phases[0].Text, c.stop)
		}
		if two[k].Phases[1].Text != want[k].Text() {
			t.Errorf("case %d (stop %q, limit %d, phase 1 %q, %s): phase 2 %q, fresh %q", k, cases[k].stop, cases[k].limit,
				two[k].Phases[0].Text, two[k].Phases[0].Finish, two[k].Phases[1].Text, want[k].Text())
		}
	}
}
