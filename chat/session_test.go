package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/planner"
)

// call records one Generate call of the fake backend.
type call struct {
	mode    planner.Mode
	history []planner.Message
	user    string
	prompt  int
}

// fakeBackend counts one token per prompt byte (like the tiny model's byte
// vocabulary), answers with fixed text and checks that every prompt plus
// its limits fits the context.
type fakeBackend struct {
	t         *testing.T
	ctxTokens int
	plan      string
	answer    string
	block     bool          // stream a little, then wait for the context to end
	started   chan struct{} // closed when a blocking Generate has streamed
	calls     []call
	planCut   bool // the plan stops at its limit: stream PlanLimit

	lastSettings Settings // what the last Generate was given
	lastSystem   string
}

func (f *fakeBackend) ContextTokens() int { return f.ctxTokens }

func (f *fakeBackend) PromptTokens(p planner.Prompter, history []planner.Message, user string) (int, error) {
	if p.Mode.HasPlan() {
		ph, err := p.PlanPrompt(history, user)
		return len(ph.Text) + len(p.Mode.AnswerOpener()), err
	}
	ph, err := p.AnswerPrompt(history, user, "")
	return len(ph.Text), err
}

func (f *fakeBackend) Generate(ctx context.Context, p planner.Prompter, set Settings, history []planner.Message, user string, stream func(Phase, string)) (Reply, error) {
	n, err := f.PromptTokens(p, history, user)
	if err != nil {
		return Reply{}, err
	}
	f.calls = append(f.calls, call{p.Mode, append([]planner.Message(nil), history...), user, n})
	f.lastSettings, f.lastSystem = set, p.System
	r := Reply{Answer: f.answer, Finish: "stop", PromptTokens: n, AnswerTokens: len(f.answer)}
	if p.Mode.HasPlan() {
		r.Plan, r.PlanFinish, r.PlanTokens = f.plan, "stop", len(f.plan)
		half := len(f.plan) / 2
		stream(PhasePlan, f.plan[:half])
		stream(PhasePlan, f.plan[half:])
		if f.planCut {
			r.PlanFinish = "length"
			stream(PlanLimit, "")
		}
	}
	if f.block {
		stream(PhaseAnswer, "partial")
		close(f.started)
		<-ctx.Done()
		r.Answer, r.Finish = "partial", "cancelled"
		return r, ctx.Err()
	}
	half := len(f.answer) / 2
	stream(PhaseAnswer, f.answer[:half])
	stream(PhaseAnswer, f.answer[half:])
	return r, nil
}

// newTestSession returns a session in codeplan mode with ChatML, rendering
// plain text into out and info.
func newTestSession(t *testing.T, b *fakeBackend, set Settings) (s *Session, out, info *bytes.Buffer) {
	t.Helper()
	out, info = &bytes.Buffer{}, &bytes.Buffer{}
	s, err := New(b, &TextRenderer{Out: out, Info: info}, Options{
		Prompter: planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}},
		Settings: set,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, out, info
}

func newFake(t *testing.T, ctxTokens int) *fakeBackend {
	return &fakeBackend{t: t, ctxTokens: ctxTokens, plan: "x = parse(q)\nreturn x", answer: "The answer is 4."}
}

func TestTurnsModesAndHistory(t *testing.T) {
	b := newFake(t, 4096)
	s, out, info := newTestSession(t, b, Settings{MaxPlanTokens: 32, MaxTokens: 32})
	ctx := context.Background()
	for _, line := range []string{"What is 2+2?", "/mode direct", "And 3+3?", "", "   "} {
		if quit, err := s.Handle(ctx, line); quit || err != nil {
			t.Fatalf("Handle(%q) = %v, %v", line, quit, err)
		}
	}
	want := "Plan:\nx = parse(q)\nreturn x\nAnswer:\nThe answer is 4.\n\n" + "Answer:\nThe answer is 4.\n\n"
	if out.String() != want {
		t.Errorf("output:\n%q\nwant\n%q", out.String(), want)
	}
	if info.String() != "mode: direct\n" {
		t.Errorf("info = %q", info.String())
	}
	if len(b.calls) != 2 {
		t.Fatalf("%d Generate calls, want 2", len(b.calls))
	}
	// The second turn sees the first: the user's message and the answer,
	// without the plan.
	wantHist := []planner.Message{{Role: "user", Content: "What is 2+2?"}, {Role: "assistant", Content: "The answer is 4."}}
	if !reflect.DeepEqual(b.calls[1].history, wantHist) || b.calls[1].mode != planner.Direct {
		t.Errorf("second call: mode %s, history %+v", b.calls[1].mode, b.calls[1].history)
	}
	tr := s.Transcript()
	if len(tr) != 2 || tr[0].Mode != planner.CodePlan || tr[0].Plan == "" || tr[1].Mode != planner.Direct || tr[1].Plan != "" || tr[1].Turn != 2 {
		t.Errorf("transcript = %+v", tr)
	}
}

func TestTrimKeepsNewestTurns(t *testing.T) {
	const ctxTokens = 400
	lim := Settings{MaxPlanTokens: 20, MaxTokens: 30}
	b := newFake(t, ctxTokens)
	s, _, info := newTestSession(t, b, lim)
	for i := 1; i <= 12; i++ {
		if _, err := s.Send(context.Background(), fmt.Sprintf("question number %d, please", i)); err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
	}
	all := s.Transcript()
	if len(all) != 12 {
		t.Fatalf("transcript has %d turns, want 12", len(all))
	}
	trimmed := false
	for i, c := range b.calls {
		if c.prompt+lim.MaxPlanTokens+lim.MaxTokens >= ctxTokens {
			t.Errorf("turn %d: prompt %d + limits %d does not fit %d", i+1, c.prompt, lim.MaxPlanTokens+lim.MaxTokens, ctxTokens)
		}
		k := len(c.history) / 2
		if all[i].ContextTurns != k {
			t.Errorf("turn %d: ContextTurns = %d, %d turns were sent", i+1, all[i].ContextTurns, k)
		}
		if k < i {
			trimmed = true
		}
		if i > 0 && k == 0 {
			t.Errorf("turn %d: all history dropped, the newest turns should stay", i+1)
		}
		// The history must be the newest k turns, in order.
		for j := 0; j < k; j++ {
			ex := all[i-k+j]
			if c.history[2*j].Content != ex.User || c.history[2*j+1].Content != ex.Answer {
				t.Errorf("turn %d: history turn %d is %q, want turn %d %q", i+1, j, c.history[2*j].Content, ex.Turn, ex.User)
			}
		}
	}
	if !trimmed {
		t.Fatal("the context never filled up: the test does not test trimming")
	}
	if n := strings.Count(info.String(), "dropped the"); n != 1 {
		t.Errorf("the trimming note appeared %d times, want once:\n%s", n, info.String())
	}
	if got := len(s.InContext()); got == 0 || got >= 12 {
		t.Errorf("InContext has %d turns", got)
	}
}

func TestTooLongMessageKeepsChatAlive(t *testing.T) {
	b := newFake(t, 300)
	s, out, _ := newTestSession(t, b, Settings{MaxPlanTokens: 20, MaxTokens: 30})
	ctx := context.Background()
	if _, err := s.Handle(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	_, err := s.Handle(ctx, strings.Repeat("long ", 100))
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if !strings.HasPrefix(out.String(), "Error: message does not fit in the context") {
		t.Errorf("output = %q", out.String())
	}
	if len(b.calls) != 1 {
		t.Errorf("the model was called for a message that cannot fit")
	}
	if len(s.InContext()) != 1 {
		t.Errorf("the refused message cost the history: %d turns left", len(s.InContext()))
	}
	out.Reset()
	if _, err := s.Handle(ctx, "short"); err != nil {
		t.Fatalf("after a refused message: %v", err)
	}
	if !strings.Contains(out.String(), "Answer:\nThe answer is 4.") {
		t.Errorf("output = %q", out.String())
	}
	if h := b.calls[1].history; len(h) != 2 || h[0].Content != "first" {
		t.Errorf("history after the refused message = %+v", h)
	}
	if tr := s.Transcript(); len(tr) != 2 || tr[1].User != "short" || tr[1].Turn != 3 {
		t.Errorf("transcript = %+v", tr)
	}
}

func TestTightContextWarnsButAnswers(t *testing.T) {
	b := newFake(t, 200)
	// The prompt (about 90 tokens) fits, the limits do not.
	s, _, info := newTestSession(t, b, Settings{MaxPlanTokens: 200, MaxTokens: 200})
	if _, err := s.Send(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.String(), "may be cut short") || len(b.calls) != 1 {
		t.Errorf("info = %q, calls = %d", info.String(), len(b.calls))
	}
}

func TestCancelReturnsToPrompt(t *testing.T) {
	b := newFake(t, 4096)
	b.block, b.started = true, make(chan struct{})
	s, out, _ := newTestSession(t, b, Settings{})
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err = s.Handle(ctx, "tell me everything")
	}()
	select {
	case <-b.started:
	case <-time.After(5 * time.Second):
		t.Fatal("generation did not start")
	}
	cancel()
	wg.Wait()
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v, want ErrCancelled", err)
	}
	if !strings.HasSuffix(out.String(), "Answer:\npartial\n[cancelled]\n\n") {
		t.Errorf("output = %q", out.String())
	}
	if len(s.Transcript()) != 0 {
		t.Errorf("a cancelled turn was recorded")
	}
	b.block = false
	if _, err := s.Send(context.Background(), "again"); err != nil {
		t.Fatal(err)
	}
	if h := b.calls[len(b.calls)-1].history; len(h) != 0 {
		t.Errorf("history after a cancelled turn = %+v, want empty", h)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		line     string
		quit     bool
		errHas   string // "" = no error
		infoHas  string
		mode     planner.Mode
		showPlan bool
	}{
		{line: "/mode nlplan", infoHas: "mode: nlplan", mode: planner.NLPlan, showPlan: true},
		{line: "/mode  Direct ", infoHas: "mode: direct", mode: planner.Direct, showPlan: true},
		{line: "/mode", infoHas: "mode: codeplan", mode: planner.CodePlan, showPlan: true},
		{line: "/mode fast", errHas: "use /mode direct", mode: planner.CodePlan, showPlan: true},
		{line: "/plan off", infoHas: "hidden", mode: planner.CodePlan},
		{line: "/plan on", infoHas: "plan: shown", mode: planner.CodePlan, showPlan: true},
		{line: "/plan maybe", errHas: "/plan on or /plan off", mode: planner.CodePlan, showPlan: true},
		{line: "/reset now", errHas: "no argument", mode: planner.CodePlan, showPlan: true},
		{line: "/save", errHas: "needs a file name", mode: planner.CodePlan, showPlan: true},
		{line: "/save chat.txt", errHas: "use .jsonl", mode: planner.CodePlan, showPlan: true},
		{line: "/help", infoHas: "/save FILE.jsonl|FILE.md", mode: planner.CodePlan, showPlan: true},
		{line: "/exit", quit: true, mode: planner.CodePlan, showPlan: true},
		{line: "/QUIT", quit: true, mode: planner.CodePlan, showPlan: true},
		{line: "/sav x.md", errHas: "did you mean /save?", mode: planner.CodePlan, showPlan: true},
		{line: "/frobnicate", errHas: "unknown command /frobnicate; commands: /mode /plan /system /set /reset /save /help /exit", mode: planner.CodePlan, showPlan: true},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			b := newFake(t, 4096)
			s, out, info := newTestSession(t, b, Settings{})
			quit, err := s.Handle(context.Background(), tc.line)
			if quit != tc.quit {
				t.Errorf("quit = %v", quit)
			}
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("err = %v, want one containing %q", err, tc.errHas)
			}
			if tc.errHas != "" && !strings.Contains(info.String(), "error: ") {
				t.Errorf("the error was not shown: %q", info.String())
			}
			if !strings.Contains(info.String(), tc.infoHas) {
				t.Errorf("info = %q, want %q", info.String(), tc.infoHas)
			}
			if s.Mode() != tc.mode || s.ShowPlan() != tc.showPlan {
				t.Errorf("mode %s, showPlan %v", s.Mode(), s.ShowPlan())
			}
			if out.Len() != 0 || len(b.calls) != 0 {
				t.Errorf("a command produced turn output %q or called the model", out.String())
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	h := HelpText()
	for _, n := range CommandNames() {
		if !strings.Contains(h, n) {
			t.Errorf("help misses %s", n)
		}
	}
}

func TestPlanHiddenStillGenerated(t *testing.T) {
	b := newFake(t, 4096)
	s, out, _ := newTestSession(t, b, Settings{})
	s.Handle(context.Background(), "/plan off")
	if _, err := s.Handle(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "Answer:\nThe answer is 4.\n\n" {
		t.Errorf("output = %q", out.String())
	}
	if tr := s.Transcript(); tr[0].Plan != b.plan {
		t.Errorf("the hidden plan was not kept: %+v", tr[0])
	}
}

func TestResetAndLiteralSlash(t *testing.T) {
	b := newFake(t, 4096)
	s, _, info := newTestSession(t, b, Settings{})
	ctx := context.Background()
	s.Handle(ctx, "one")
	s.Handle(ctx, "two")
	s.Handle(ctx, "/reset")
	if !strings.Contains(info.String(), "2 turns forgotten") {
		t.Errorf("info = %q", info.String())
	}
	ex, err := s.Send(ctx, "three")
	if err != nil || ex.Turn != 1 || len(b.calls[2].history) != 0 {
		t.Errorf("after /reset: turn %d, err %v, history %+v", ex.Turn, err, b.calls[2].history)
	}
	s.Handle(ctx, "//etc/hosts is a file")
	if got := b.calls[3].user; got != "/etc/hosts is a file" {
		t.Errorf("literal slash message = %q", got)
	}
}

func TestNewValidates(t *testing.T) {
	b := newFake(t, 100)
	r := &TextRenderer{Out: &bytes.Buffer{}}
	for _, p := range []planner.Prompter{
		{Mode: "fast", Format: planner.Trained, Chat: planner.ChatML{}},
		{Mode: planner.Direct, Format: "x", Chat: planner.ChatML{}},
		{Mode: planner.Direct, Format: planner.Trained},
	} {
		if _, err := New(b, r, Options{Prompter: p}); err == nil {
			t.Errorf("New accepted %+v", p)
		}
	}
}
