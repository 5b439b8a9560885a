package chat

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/codeplan-dev/codeplan/planner"
)

// Kind is the kind of a message that is not model output.
type Kind int

// Message kinds.
const (
	Info  Kind = iota // a reply to a command
	Note              // an aside, such as trimmed history (dim on a terminal)
	Error             // something failed
)

// Renderer shows a conversation. The Session calls Start, any number of
// Stream calls and Finish for each turn that generates; a turn refused
// before generating gets only Finish.
type Renderer interface {
	// Start begins a turn; plan says whether plan text will be streamed.
	Start(turn int, mode planner.Mode, plan bool)
	// Stream shows generated text as it arrives.
	Stream(phase Phase, text string)
	// Finish ends a turn. ex holds the whole reply (without the plan when
	// plans are hidden); err is set when the turn failed or was cancelled
	// (ErrCancelled).
	Finish(ex Exchange, err error)
	// Message shows a reply to a command, a note or an error.
	Message(k Kind, text string)
}

// ANSI styles for the terminal.
const (
	ansiReset = "\x1b[0m"
	ansiDim   = "\x1b[2m"
	ansiCode  = "\x1b[36m" // cyan: the plan is code
	ansiRed   = "\x1b[31m"
	ansiBold  = "\x1b[1m"
)

// TextRenderer writes turns as text, streaming them.
//
// With Terminal set it draws for a person: a "── plan ──" header with the
// plan in a code colour, then an "── answer ──" header, colours when Color
// is set too, and control characters in model output made visible so that
// a model cannot drive the terminal. Without Terminal it writes plain
// "Plan:" and "Answer:" markers for scripts, the text byte for byte, a blank
// line after each turn, and "Error: ..." in place of a turn that failed.
type TextRenderer struct {
	Out      io.Writer // turns
	Info     io.Writer // command replies, notes and errors (nil: Out)
	Terminal bool
	Color    bool

	phase   Phase // phase being streamed, "" before the first text
	planned bool  // the current turn's mode writes a plan
	lastNL  bool  // the last byte written to Out was a newline
	wrote   bool  // anything was written for the current turn
	planCut bool  // the PlanLimit event was shown for the current turn
}

// style wraps s in an ANSI style when colours are on.
func (r *TextRenderer) style(code, s string) string {
	if !r.Color || !r.Terminal {
		return s
	}
	return code + s + ansiReset
}

func (r *TextRenderer) write(s string) {
	if s == "" {
		return
	}
	io.WriteString(r.Out, s)
	r.lastNL = strings.HasSuffix(s, "\n")
	r.wrote = true
}

// newline ends the current line if text was written on it.
func (r *TextRenderer) newline() {
	if r.wrote && !r.lastNL {
		r.write("\n")
	}
}

// Start implements Renderer.
func (r *TextRenderer) Start(turn int, mode planner.Mode, plan bool) {
	r.phase, r.planned, r.lastNL, r.wrote, r.planCut = "", mode.HasPlan(), true, false, false
	if mode.HasPlan() && !plan && r.Terminal {
		r.write(r.style(ansiDim, "(planning; the plan is hidden)") + "\n")
	}
}

// header is the line that opens a phase.
func (r *TextRenderer) header(ph Phase) string {
	if r.Terminal {
		return r.style(ansiDim, "── "+string(ph)+" ──") + "\n"
	}
	if ph == PhasePlan {
		return "Plan:\n"
	}
	return "Answer:\n"
}

// Stream implements Renderer.
func (r *TextRenderer) Stream(ph Phase, text string) {
	if ph == PlanLimit {
		r.planCut = true
		if r.Terminal {
			if r.phase == PhasePlan && r.Color {
				io.WriteString(r.Out, ansiReset)
			}
			r.newline()
			r.write(r.style(ansiDim, "[the plan hit its token limit before it ended; the answer follows it anyway]") + "\n")
			if r.phase == PhasePlan && r.Color {
				io.WriteString(r.Out, ansiCode)
			}
		}
		return
	}
	if ph != r.phase {
		if r.phase == PhasePlan && r.Color && r.Terminal {
			io.WriteString(r.Out, ansiReset)
		}
		r.newline()
		// On a terminal a direct answer needs no header: there is nothing
		// to tell it apart from.
		if !(r.Terminal && ph == PhaseAnswer && !r.planned) {
			r.write(r.header(ph))
		}
		r.phase = ph
		if ph == PhasePlan && r.Color && r.Terminal {
			io.WriteString(r.Out, ansiCode)
		}
	}
	if r.Terminal {
		text = Sanitize(text)
	}
	r.write(text)
}

// Finish implements Renderer.
func (r *TextRenderer) Finish(ex Exchange, err error) {
	if r.phase == PhasePlan && r.Color && r.Terminal {
		io.WriteString(r.Out, ansiReset)
	}
	// A turn refused before generating, or one whose answer never streamed
	// (a Backend that does not stream), is written out here.
	if err == nil && r.phase != PhaseAnswer {
		if ex.Plan != "" && r.phase != PhasePlan {
			r.Stream(PhasePlan, ex.Plan)
		}
		r.Stream(PhaseAnswer, ex.Answer)
	}
	r.newline()
	switch {
	case err == ErrCancelled:
		if r.Terminal {
			r.write(r.style(ansiDim, "[cancelled]") + "\n")
		} else {
			r.write("[cancelled]\n")
		}
	case err != nil:
		if r.Terminal {
			r.write(r.style(ansiRed, "error: "+err.Error()) + "\n")
		} else {
			r.write("Error: " + oneLine(err.Error()) + "\n")
		}
	case r.Terminal && ex.Finish == "length":
		r.write(r.style(ansiDim, "[cut off at the token limit]") + "\n")
	}
	if r.Terminal && err == nil && ex.PlanFinish == "length" && ex.Mode.HasPlan() && !r.planCut {
		r.write(r.style(ansiDim, "[the plan hit its token limit before it ended]") + "\n")
	}
	if r.Terminal && err == nil && ex.Seconds > 0 {
		r.write(r.style(ansiDim, fmt.Sprintf("[%d tokens in %.1f s, %.1f tok/s]", ex.PlanTokens+ex.AnswerTokens, ex.Seconds, ex.TokensPerSecond())) + "\n")
	}
	r.write("\n")
	r.phase, r.planned, r.planCut = "", false, false
}

// Message implements Renderer.
func (r *TextRenderer) Message(k Kind, text string) {
	w := r.Info
	if w == nil {
		w = r.Out
	}
	switch {
	case r.Terminal && k == Note:
		text = r.style(ansiDim, text)
	case r.Terminal && k == Error:
		text = r.style(ansiRed, "error: "+text)
	case !r.Terminal && k == Note:
		text = "note: " + text
	case !r.Terminal && k == Error:
		text = "error: " + text
	}
	fmt.Fprintln(w, text)
	if w == r.Out {
		r.lastNL = true
	}
}

// Banner is the welcome line for a terminal session.
func (r *TextRenderer) Banner(text string) {
	fmt.Fprintln(r.Out, r.style(ansiDim, text))
}

// ContinuationPrompt is shown while a multi-line message is being typed.
func ContinuationPrompt(color bool) string {
	if color {
		return ansiDim + "...>" + ansiReset + " "
	}
	return "...> "
}

// Prompt is the input prompt for a terminal session, bold when colours are on.
func Prompt(color bool) string {
	if color {
		return ansiBold + "you>" + ansiReset + " "
	}
	return "you> "
}

// JSONRenderer writes one JSON object per turn (TurnRecord) to Out and
// everything else as text lines to Info, so that Out stays machine-readable.
type JSONRenderer struct {
	Out  io.Writer
	Info io.Writer // nil: messages are dropped
}

// TurnRecord is the JSON object written for each turn.
type TurnRecord struct {
	Exchange
	// Error is set when the turn failed or was cancelled; it is then not
	// part of the conversation.
	Error string `json:"error,omitempty"`
}

// Start implements Renderer.
func (JSONRenderer) Start(int, planner.Mode, bool) {}

// Stream implements Renderer.
func (JSONRenderer) Stream(Phase, string) {}

// Finish implements Renderer.
func (r JSONRenderer) Finish(ex Exchange, err error) {
	rec := TurnRecord{Exchange: ex}
	if err != nil {
		rec.Error = err.Error()
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	// Scripts read this, so "<" stays "<" rather than "\u003c".
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		// Only an invalid mode fails to encode, which a Session never has.
		b.Reset()
		enc.Encode(map[string]string{"error": err.Error()})
	}
	io.WriteString(r.Out, b.String())
}

// Message implements Renderer.
func (r JSONRenderer) Message(k Kind, text string) {
	if r.Info == nil {
		return
	}
	switch k {
	case Note:
		text = "note: " + text
	case Error:
		text = "error: " + text
	}
	fmt.Fprintln(r.Info, text)
}

// Sanitize makes model output safe to print on a terminal: invalid UTF-8
// becomes U+FFFD and control characters other than newline and tab (escape
// sequences, bells, carriage returns) become visible caret or U+FFFD forms.
func Sanitize(s string) string {
	clean := true
	for _, c := range s {
		if c == utf8.RuneError || (unicode.IsControl(c) && c != '\n' && c != '\t') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, c := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case c == '\n' || c == '\t' || !unicode.IsControl(c):
			b.WriteRune(c)
		case c < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(c) + '@')
		default: // DEL and C1 controls
			b.WriteRune('\uFFFD')
		}
	}
	return b.String()
}

// oneLine joins the lines of s, so a script's "Error:" marker stays one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
