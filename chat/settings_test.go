package chat

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/planner"
)

func TestSetChangesTheNextTurn(t *testing.T) {
	b := newFake(t, 4096)
	s, _, info := newTestSession(t, b, Settings{MaxPlanTokens: 20, MaxTokens: 30, Temperature: 0.2})
	ctx := context.Background()
	for _, line := range []string{"/set temperature 0.7", "/set top_p 0.9", "/set max_tokens 40", "/set max-plan-tokens 12"} {
		if _, err := s.Handle(ctx, line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	if _, err := s.Handle(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	want := Settings{MaxPlanTokens: 12, MaxTokens: 40, Temperature: 0.7, TopP: 0.9}
	if b.lastSettings != want {
		t.Errorf("Generate got %+v, want %+v", b.lastSettings, want)
	}
	for _, bad := range []string{"/set temperature NaN", "/set temperature -1", "/set top_p 1.5", "/set max_tokens 0", "/set max_tokens x", "/set nonsense 1", "/set temperature"} {
		if _, err := s.Handle(ctx, bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if s.Settings() != want {
		t.Errorf("a refused /set changed the settings: %+v", s.Settings())
	}
	info.Reset()
	s.Handle(ctx, "/set")
	if !strings.Contains(info.String(), "temperature 0.7, top_p 0.9, max_tokens 40, max_plan_tokens 12") {
		t.Errorf("/set without argument shows %q", info.String())
	}
}

func TestSystemCommand(t *testing.T) {
	b := newFake(t, 4096)
	s, _, info := newTestSession(t, b, Settings{})
	ctx := context.Background()
	s.Handle(ctx, "/system You are terse.")
	s.Handle(ctx, "hi")
	if b.lastSystem != "You are terse." {
		t.Errorf("system message sent: %q", b.lastSystem)
	}
	info.Reset()
	s.Handle(ctx, "/system")
	if !strings.Contains(info.String(), "You are terse.") {
		t.Errorf("/system shows %q", info.String())
	}
	s.Handle(ctx, "/system -")
	s.Handle(ctx, "hi again")
	if b.lastSystem != "" {
		t.Errorf("/system - left %q", b.lastSystem)
	}
}

// TestPlanLimitNoteBeforeAnswer checks that on a terminal the note about a
// plan cut at its limit comes before the answer, not after it, and that
// each reply ends with its speed.
func TestPlanLimitNoteBeforeAnswer(t *testing.T) {
	b := newFake(t, 4096)
	b.planCut = true
	var out bytes.Buffer
	s, err := New(b, &TextRenderer{Out: &out, Terminal: true}, Options{
		Prompter: planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := s.Send(context.Background(), "question")
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	note := strings.Index(text, "plan hit its token limit")
	answer := strings.Index(text, "The answer is 4.")
	if note < 0 || answer < 0 || note > answer {
		t.Fatalf("note at %d, answer at %d:\n%s", note, answer, text)
	}
	if strings.Count(text, "plan hit its token limit") != 1 {
		t.Errorf("the note is shown more than once:\n%s", text)
	}
	if ex.Seconds <= 0 || !strings.Contains(text, "tok/s]") {
		t.Errorf("no speed after the reply (seconds %g):\n%s", ex.Seconds, text)
	}
}
