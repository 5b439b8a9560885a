package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/planner"
)

// renderTurn drives a renderer through one turn.
func renderTurn(r Renderer, mode planner.Mode, plan, answer string, err error) {
	r.Start(1, mode, plan != "")
	if plan != "" {
		r.Stream(PhasePlan, plan)
	}
	r.Stream(PhaseAnswer, answer)
	r.Finish(Exchange{Turn: 1, Mode: mode, User: "u", Reply: Reply{Plan: plan, Answer: answer, Finish: "stop"}}, err)
}

func TestTerminalRendering(t *testing.T) {
	var out bytes.Buffer
	renderTurn(&TextRenderer{Out: &out, Terminal: true, Color: true}, planner.CodePlan, "x = 1", "ok\x1b[2Jdone", nil)
	got := out.String()
	want := ansiDim + "── plan ──" + ansiReset + "\n" + ansiCode + "x = 1" + ansiReset + "\n" +
		ansiDim + "── answer ──" + ansiReset + "\n" + "ok^[[2Jdone\n\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestTerminalWithoutColor(t *testing.T) {
	var out bytes.Buffer
	renderTurn(&TextRenderer{Out: &out, Terminal: true}, planner.CodePlan, "x = 1", "ok", nil)
	if want := "── plan ──\nx = 1\n── answer ──\nok\n\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	renderTurn(&TextRenderer{Out: &out, Terminal: true}, planner.Direct, "", "ok", nil)
	if out.String() != "ok\n\n" {
		t.Errorf("direct answer on a terminal: %q", out.String())
	}
}

func TestPlainRendering(t *testing.T) {
	tests := []struct {
		name         string
		mode         planner.Mode
		plan, answer string
		err          error
		want         string
	}{
		{"codeplan", planner.CodePlan, "step()\n", "fine", nil, "Plan:\nstep()\nAnswer:\nfine\n\n"},
		{"direct", planner.Direct, "", "fine", nil, "Answer:\nfine\n\n"},
		{"raw bytes kept", planner.Direct, "", "a\x1bb", nil, "Answer:\na\x1bb\n\n"},
		{"cancelled", planner.Direct, "", "par", ErrCancelled, "Answer:\npar\n[cancelled]\n\n"},
		{"failed", planner.Direct, "", "", errors.New("boom\nbang"), "Answer:\nError: boom bang\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			renderTurn(&TextRenderer{Out: &out}, tc.mode, tc.plan, tc.answer, tc.err)
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestRefusedTurnIsOneErrorLine(t *testing.T) {
	var out bytes.Buffer
	r := &TextRenderer{Out: &out}
	r.Finish(Exchange{Turn: 3, Mode: planner.CodePlan, User: "long"}, ErrTooLong)
	if out.String() != "Error: "+ErrTooLong.Error()+"\n\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestJSONRenderer(t *testing.T) {
	var out, info bytes.Buffer
	r := JSONRenderer{Out: &out, Info: &info}
	renderTurn(r, planner.CodePlan, "p()", "a <b>", nil)
	renderTurn(r, planner.Direct, "", "", ErrCancelled)
	r.Message(Note, "hello")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out.String())
	}
	var a, b TurnRecord
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &b); err != nil {
		t.Fatal(err)
	}
	if a.Plan != "p()" || a.Answer != "a <b>" || a.Mode != planner.CodePlan || a.Error != "" || !strings.Contains(lines[0], "<b>") {
		t.Errorf("first record %+v (%s)", a, lines[0])
	}
	if b.Error != "cancelled" || strings.Contains(lines[1], `"plan"`) {
		t.Errorf("second record %s", lines[1])
	}
	if info.String() != "note: hello\n" {
		t.Errorf("info = %q", info.String())
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text\n\tindented", "plain text\n\tindented"},
		{"bell\a", "bell^G"},
		{"esc\x1b[31m", "esc^[[31m"},
		{"cr\rlf", "cr^Mlf"},
		{"del\x7f", "del\uFFFD"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"c1 \u009b", "c1 \uFFFD"},
		{"héllo", "héllo"},
	}
	for _, tc := range tests {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
