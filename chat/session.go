// Package chat is the core of `codeplan chat`: a multi-turn conversation
// that answers the CodePlan way (plan first, then the answer), kept within
// the model's context window, with slash commands and rendering for a
// terminal, a plain script or JSON lines.
//
// It knows nothing about llama.cpp or terminals. The model side is a Backend
// (the command implements it with package inference on the engine; tests
// use a fake), and output goes through a Renderer, so turn handling, history
// trimming and the commands are unit-testable. Line editing, signals and
// colours detection stay in the command.
package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/codeplan-dev/codeplan/planner"
)

// Phase names the part of a reply that streamed text belongs to.
type Phase string

// The two phases of a reply. Direct mode has only PhaseAnswer.
const (
	PhasePlan   Phase = "plan"
	PhaseAnswer Phase = "answer"
	// PlanLimit is not text but an event: a Backend streams it (with empty
	// text) when the plan phase stops at its token limit, before any answer
	// text, so that the user reads the warning before the answer.
	PlanLimit Phase = "plan_limit"
)

// Settings are the generation settings of one turn: token limits and
// sampling. /set changes them during a chat.
type Settings struct {
	MaxPlanTokens int     // plan phase (plan modes only), in tokens
	MaxTokens     int     // answer phase, in tokens
	Temperature   float64 // 0 = greedy
	TopP          float64 // nucleus sampling; 0 or 1 = off
}

// generation is the most tokens a turn in mode m may generate.
func (l Settings) generation(m planner.Mode) int {
	if m.HasPlan() {
		return l.MaxPlanTokens + l.MaxTokens
	}
	return l.MaxTokens
}

// Reply is what the model generated for one turn.
type Reply struct {
	Plan         string `json:"plan,omitempty"`
	Answer       string `json:"answer"`
	PlanFinish   string `json:"plan_finish,omitempty"` // "stop", or "length" when the plan did not terminate
	Finish       string `json:"finish"`                // "stop", "length", "cancelled" or "error"
	PromptTokens int    `json:"prompt_tokens"`
	PlanTokens   int    `json:"plan_tokens,omitempty"`
	AnswerTokens int    `json:"answer_tokens"`
}

// Backend is the model side of a chat.
type Backend interface {
	// ContextTokens is how many tokens one turn may use in total: prompt,
	// plan and answer.
	ContextTokens() int
	// PromptTokens counts the tokens of the prompt that Generate would feed
	// for user after history, exactly as the model will see it; a text too
	// long to tokenize at all gives an error wrapping ErrTooLong.
	PromptTokens(p planner.Prompter, history []planner.Message, user string) (int, error)
	// Generate answers user after history, passing text to stream as it is
	// generated (stream is called from one goroutine at a time and never
	// after Generate returns). Cancelling ctx stops the generation; the
	// partial reply is returned with an error.
	Generate(ctx context.Context, p planner.Prompter, set Settings, history []planner.Message, user string, stream func(Phase, string)) (Reply, error)
}

// Exchange is one finished turn of the conversation: the user's message and
// the model's reply, with the mode it was answered in.
type Exchange struct {
	Turn int          `json:"turn"`
	Mode planner.Mode `json:"mode"`
	User string       `json:"user"`
	// ContextTurns is how many earlier turns were sent with the message;
	// fewer than Turn-1 once old turns were dropped to fit the context.
	ContextTurns int `json:"context_turns"`
	Reply
	// Seconds is the wall time of the generation (prompt included).
	Seconds float64 `json:"seconds"`
}

// TokensPerSecond is the generation speed of the turn: plan and answer
// tokens over its wall time (0 when unknown).
func (ex Exchange) TokensPerSecond() float64 {
	if ex.Seconds <= 0 {
		return 0
	}
	return float64(ex.PlanTokens+ex.AnswerTokens) / ex.Seconds
}

// ErrCancelled is reported for a turn whose generation was cancelled (Ctrl-C).
var ErrCancelled = errors.New("cancelled")

// ErrTooLong is reported for a message that does not fit in the context
// even without any history.
var ErrTooLong = errors.New("message does not fit in the context")

// minReplyTokens is the least room a turn needs for its reply: below it the
// message is refused rather than answered with a few tokens.
const minReplyTokens = 16

// Options configure a Session.
type Options struct {
	// Prompter gives the mode, format, chat template and system message.
	Prompter planner.Prompter
	// Settings of each turn (token limits 0 = 256 plan tokens, 512 answer
	// tokens).
	Settings Settings
	// HidePlan hides the plan in the output; it is still generated and saved.
	HidePlan bool
}

// Session is one conversation. Its methods must not be called concurrently.
type Session struct {
	backend  Backend
	render   Renderer
	prompter planner.Prompter
	settings Settings
	showPlan bool

	log       []Exchange // every finished turn since the last /reset
	first     int        // oldest entry of log still sent to the model
	turns     int        // turns numbered so far (refused and cancelled ones too)
	trimNoted bool       // the user was told that old turns are dropped
}

// New starts a session. The Prompter must have a valid mode and format and
// a chat template.
func New(b Backend, r Renderer, o Options) (*Session, error) {
	if b == nil || r == nil {
		return nil, errors.New("chat: backend and renderer are required")
	}
	if !o.Prompter.Mode.Valid() {
		return nil, fmt.Errorf("chat: invalid mode %q (want direct, nlplan or codeplan)", o.Prompter.Mode)
	}
	if !o.Prompter.Format.Valid() {
		return nil, fmt.Errorf("chat: invalid format %q (want trained or prompted)", o.Prompter.Format)
	}
	if o.Prompter.Chat == nil {
		return nil, errors.New("chat: the prompter has no chat template")
	}
	if o.Settings.MaxPlanTokens <= 0 {
		o.Settings.MaxPlanTokens = planner.DefaultMaxPlanTokens
	}
	if o.Settings.MaxTokens <= 0 {
		o.Settings.MaxTokens = planner.DefaultMaxTokens
	}
	return &Session{backend: b, render: r, prompter: o.Prompter, settings: o.Settings, showPlan: !o.HidePlan}, nil
}

// Mode is the current answer mode.
func (s *Session) Mode() planner.Mode { return s.prompter.Mode }

// Settings are the current generation settings.
func (s *Session) Settings() Settings { return s.settings }

// ShowPlan reports whether plans are shown.
func (s *Session) ShowPlan() bool { return s.showPlan }

// Transcript returns every finished turn since the last /reset, including
// turns already dropped from the model's context.
func (s *Session) Transcript() []Exchange { return append([]Exchange(nil), s.log...) }

// InContext returns the turns that the next message is sent with (before any
// trimming that message needs).
func (s *Session) InContext() []Exchange { return append([]Exchange(nil), s.log[s.first:]...) }

// Handle processes one input line: a slash command or a message to the
// model. Empty lines are ignored. A line starting with "//" sends the rest,
// starting with "/", as a message. quit is true after /exit. err is what
// went wrong (already shown through the Renderer), so a script can fail
// with a useful exit status; the session stays usable either way.
func (s *Session) Handle(ctx context.Context, line string) (quit bool, err error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return false, nil
	}
	if strings.HasPrefix(line, "//") {
		_, err := s.Send(ctx, line[1:])
		return false, err
	}
	if strings.HasPrefix(line, "/") {
		return s.Command(line)
	}
	_, err = s.Send(ctx, line)
	return false, err
}

// Send runs one turn: it fits the history into the context, generates the
// plan and the answer while streaming them to the Renderer, and records the
// exchange. A cancelled or failed turn is shown but not recorded.
func (s *Session) Send(ctx context.Context, user string) (Exchange, error) {
	s.turns++
	ex := Exchange{Turn: s.turns, Mode: s.prompter.Mode, User: user}
	dropped, err := s.fit(user)
	if err != nil {
		ex.Finish = "error"
		s.render.Finish(ex, err)
		return ex, err
	}
	if dropped > 0 && !s.trimNoted {
		s.trimNoted = true
		s.render.Message(Note, fmt.Sprintf("dropped the %s to fit the %d-token context; from now on the oldest turns are forgotten as the chat grows (/reset starts afresh)",
			plural(dropped, "oldest turn", "%d oldest turns"), s.backend.ContextTokens()))
	}
	history := s.history()
	ex.ContextTurns = len(s.log) - s.first
	s.render.Start(ex.Turn, ex.Mode, s.showPlan && ex.Mode.HasPlan())
	// The mutex orders stream calls against the final Finish even if a
	// Backend broke its promise not to stream after returning.
	var mu sync.Mutex
	done := false
	stream := func(ph Phase, text string) {
		mu.Lock()
		defer mu.Unlock()
		if done || (ph == PhasePlan && !s.showPlan) {
			return
		}
		s.render.Stream(ph, text)
	}
	start := time.Now()
	reply, err := s.backend.Generate(ctx, s.prompter, s.settings, history, user, stream)
	ex.Seconds = time.Since(start).Seconds()
	mu.Lock()
	done = true
	mu.Unlock()
	ex.Reply = reply
	if err != nil {
		if ctx.Err() != nil {
			err = ErrCancelled
			ex.Finish = "cancelled"
		} else if ex.Finish == "" || ex.Finish == "stop" {
			ex.Finish = "error"
		}
		s.render.Finish(s.shown(ex), err)
		return ex, err
	}
	s.log = append(s.log, ex)
	s.render.Finish(s.shown(ex), nil)
	return ex, nil
}

// shown is the exchange as the Renderer may show it: without the plan while
// plans are hidden.
func (s *Session) shown(ex Exchange) Exchange {
	if !s.showPlan {
		ex.Plan = ""
	}
	return ex
}

// history is the conversation sent with the next message.
func (s *Session) history() []planner.Message { return s.historyFrom(s.first) }

// historyFrom renders the turns from log[first] on as messages: the user
// messages and the answers the user saw (the plans are the model's scratch
// work).
func (s *Session) historyFrom(first int) []planner.Message {
	msgs := make([]planner.Message, 0, 2*(len(s.log)-first))
	for _, ex := range s.log[first:] {
		msgs = append(msgs,
			planner.Message{Role: planner.RoleUser, Content: ex.User},
			planner.Message{Role: planner.RoleAssistant, Content: ex.Answer})
	}
	return msgs
}

// fit drops the oldest turns until the prompt for user plus the generation
// limits fits in the context, and returns how many it dropped. With no
// history left it accepts a prompt that leaves at least minReplyTokens for
// the reply (the reply may then be cut short, which the user is told), and
// otherwise returns an error wrapping ErrTooLong and keeps the history: a
// message that cannot be answered must not cost the conversation.
func (s *Session) fit(user string) (int, error) {
	budget := s.backend.ContextTokens()
	gen := s.settings.generation(s.prompter.Mode)
	for first := s.first; ; first++ {
		n, err := s.backend.PromptTokens(s.prompter, s.historyFrom(first), user)
		if errors.Is(err, ErrTooLong) {
			return 0, fmt.Errorf("%w (shorten it)", err)
		}
		if err != nil {
			return 0, err
		}
		// The engine needs one position beyond the last token it feeds.
		fits := n+gen < budget
		if !fits && first < len(s.log) {
			continue
		}
		if !fits {
			room := budget - 1 - n
			if room < min(gen, minReplyTokens) {
				return 0, fmt.Errorf("%w: it needs %d prompt tokens and the context holds %d (shorten it, or start the chat with a larger context)", ErrTooLong, n, budget)
			}
			s.render.Message(Note, fmt.Sprintf("only %d tokens are left for the reply (limits: %d); it may be cut short", room, gen))
		}
		dropped := first - s.first
		s.first = first
		return dropped, nil
	}
}

// plural formats n with a singular word or a plural format.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf(many, n)
}
