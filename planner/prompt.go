package planner

import (
	"errors"
	"fmt"
	"strings"
)

// The delimiters of the trained format (see the package doc). They are
// shared by training and inference through AssistantText, Prompter and
// SplitOutput, and must never differ between them.
//
// The answer part is headed "Response:", as in the CodePlan paper's Figure 1
// ("Plan:" then "Response:"). Before 2026-11-30 it was "Answer:"; SplitOutput
// still accepts an "Answer:" header when no "Response:" header is found, so
// outputs of models tuned on the old layout remain readable.
const (
	planWord       = "Plan"
	answerWord     = "Response"
	legacyAnswer   = "Answer"
	planHeader     = planWord + ":\n"
	codeFenceOpen  = "```python\n"
	codeFenceClose = "```"
	answerHeader   = answerWord + ":\n"
)

// CodePlanInstruction is appended to the user message in the prompted
// codeplan format. It asks for exactly the layout of the trained format, so one
// parser serves both formats.
const CodePlanInstruction = "Before answering, write a plan for your answer as concise Python-style pseudocode: " +
	"use functions, if/for statements and calls to sub-steps to outline the high-level reasoning steps, " +
	"without working out the final result. Then give your answer, following the plan. " +
	"Use exactly this layout:\n" +
	planHeader + codeFenceOpen + "<your pseudocode plan>\n" + codeFenceClose + "\n" + answerHeader + "<your answer>"

// NLPlanInstruction is appended to the user message in the prompted nlplan format.
const NLPlanInstruction = "Before answering, write a plan for your answer as a short numbered list of " +
	"natural-language steps that outline the high-level reasoning, without working out the final result. " +
	"Then give your answer, following the plan. Use exactly this layout:\n" +
	planHeader + "1. <first step>\n2. <second step>\n...\n" + answerHeader + "<your answer>"

// ErrNoPlanPhase is returned by PlanPrompt in direct mode, which has no plan.
var ErrNoPlanPhase = errors.New("direct mode has no plan phase")

// Phase is the input for one generation call.
type Phase struct {
	// Text is the full text to feed the model: the rendered conversation, the
	// assistant header and any assistant text already fixed by the format.
	Text string
	// Stop lists the strings that end this phase. It never contains the chat
	// template's end-of-turn marker: callers stop at the model's
	// end-of-generation tokens in every phase anyway.
	Stop []string
}

// Prompter builds prompts for one mode and format. The zero value is not
// usable: Mode, Format and Chat must be set.
type Prompter struct {
	Mode   Mode          // direct, nlplan or codeplan
	Format Format        // trained or prompted
	Chat   ChatTemplater // the model's chat template (ChatML{} as a fallback)
	System string        // optional system message, put before history when not empty
}

// PlanPrompt returns phase 1: the conversation, the assistant header and the
// plan opener ("Plan:\n```python\n" for codeplan), so that the model's first
// tokens are the plan itself. Generation stops at the closing delimiter.
//
// history holds earlier turns (user and assistant messages; assistant turns
// should hold the answers the user saw). user is the new user message.
// Direct mode returns ErrNoPlanPhase.
func (p Prompter) PlanPrompt(history []Message, user string) (Phase, error) {
	if err := p.check(); err != nil {
		return Phase{}, err
	}
	if !p.Mode.HasPlan() {
		return Phase{}, ErrNoPlanPhase
	}
	head, err := p.render(history, user)
	if err != nil {
		return Phase{}, err
	}
	return Phase{Text: head + p.Mode.PlanOpener(), Stop: planStops(p.Mode)}, nil
}

// AnswerPrompt returns phase 2. For plan modes its text is exactly the phase 1
// text, then CleanPlan(plan), then the answer opener ("\n```\nResponse:\n" for
// codeplan), so the model continues with the answer. For direct mode plan must
// be empty and the text ends with the assistant header.
func (p Prompter) AnswerPrompt(history []Message, user, plan string) (Phase, error) {
	if err := p.check(); err != nil {
		return Phase{}, err
	}
	if !p.Mode.HasPlan() && strings.TrimSpace(plan) != "" {
		return Phase{}, fmt.Errorf("direct mode takes no plan, got %d bytes", len(plan))
	}
	head, err := p.render(history, user)
	if err != nil {
		return Phase{}, err
	}
	if !p.Mode.HasPlan() {
		return Phase{Text: head}, nil
	}
	plan = CleanPlan(plan)
	if err := checkPlanDelimiters(p.Mode, plan); err != nil {
		return Phase{}, err
	}
	return Phase{Text: head + p.Mode.PlanOpener() + plan + p.Mode.AnswerOpener()}, nil
}

// OneShotPrompt returns a prompt for generating plan and answer in a single
// call: the phase 1 text with no stop strings (direct: the phase 2 text).
// Recover the parts of the output with SplitOutput.
func (p Prompter) OneShotPrompt(history []Message, user string) (Phase, error) {
	if p.Mode == Direct {
		return p.AnswerPrompt(history, user, "")
	}
	ph, err := p.PlanPrompt(history, user)
	ph.Stop = nil
	return ph, err
}

// TrainingExample renders one fine-tuning example. prefix is the conversation
// up to and including the assistant header (context, not scored by the loss);
// target is the assistant turn, AssistantText(mode, plan, response), followed
// by whatever the template puts after it, such as its end-of-turn marker
// (scored).
//
// The split is derived by rendering [system?, user] with the assistant header
// and [system?, user, assistant] in full; the first must be a prefix of the
// second, otherwise the template changes earlier text when an assistant turn
// follows and no clean split exists, which is reported as an error.
func (p Prompter) TrainingExample(prompt, plan, response string) (prefix, target string, err error) {
	if err := p.check(); err != nil {
		return "", "", err
	}
	msgs, err := p.TrainingMessages(prompt, plan, response)
	if err != nil {
		return "", "", err
	}
	prefix, err = p.Chat.ApplyTemplate(msgs[:len(msgs)-1], true)
	if err != nil {
		return "", "", fmt.Errorf("chat template (generation prompt): %w", err)
	}
	full, err := p.Chat.ApplyTemplate(msgs, false)
	if err != nil {
		return "", "", fmt.Errorf("chat template (full conversation): %w", err)
	}
	if !strings.HasPrefix(full, prefix) {
		i := commonPrefixLen(prefix, full)
		return "", "", fmt.Errorf("chat template renders the generation prompt as %q but the "+
			"conversation with the assistant turn as %q at byte %d: the prompt is not a prefix, so "+
			"prompt and target cannot be split", excerpt(prefix, i), excerpt(full, i), i)
	}
	return prefix, full[len(prefix):], nil
}

// TrainingMessages is one fine-tuning example as chat messages, before any
// chat template: the system message (when set), the user message (with the
// prompted format's instruction), and the assistant turn
// AssistantText(mode, plan, response). TrainingExample renders exactly these
// messages, so a trainer that applies the same chat template to them trains
// on the same text (`codeplan export` writes them).
func (p Prompter) TrainingMessages(prompt, plan, response string) ([]Message, error) {
	if !p.Mode.Valid() {
		return nil, fmt.Errorf("planner: Prompter.Mode %q is not direct, nlplan or codeplan", string(p.Mode))
	}
	if !p.Format.Valid() {
		return nil, fmt.Errorf("planner: Prompter.Format %q is not trained or prompted", string(p.Format))
	}
	asst, err := AssistantText(p.Mode, plan, response)
	if err != nil {
		return nil, err
	}
	return append(p.messages(nil, prompt), Message{Role: RoleAssistant, Content: asst}), nil
}

// AssistantText is the assistant turn of the trained format:
//
//	codeplan: "Plan:\n```python\n" + plan + "\n```\nResponse:\n" + response
//	nlplan:   "Plan:\n" + plan + "\nResponse:\n" + response
//	direct:   response
//
// plan is passed through CleanPlan and response through strings.TrimSpace.
// A plan that contains the mode's closing delimiter on a line of its own is an
// error, because the text could then not be split back unambiguously.
func AssistantText(mode Mode, plan, response string) (string, error) {
	if !mode.Valid() {
		return "", fmt.Errorf("invalid mode %q", string(mode))
	}
	response = strings.TrimSpace(response)
	if !mode.HasPlan() {
		return response, nil
	}
	plan = CleanPlan(plan)
	if plan == "" {
		return "", fmt.Errorf("%s example has an empty plan", mode)
	}
	if err := checkPlanDelimiters(mode, plan); err != nil {
		return "", err
	}
	return mode.PlanOpener() + plan + mode.AnswerOpener() + response, nil
}

// CleanPlan removes trailing spaces from every line and blank lines at both
// ends, keeping indentation. Training and inference both apply it, so a plan
// is laid out identically in both.
func CleanPlan(plan string) string {
	plan = strings.ReplaceAll(plan, "\r\n", "\n")
	lines := strings.Split(plan, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

// SplitOutput recovers the plan and the answer from the assistant text of a
// one-shot generation, with or without the plan opener at its start (a prompt
// from OneShotPrompt already contains it). It accepts the trained layout and
// the usual variations of instruct models: markdown emphasis or "#" before the
// headers, a fence with another language tag, a missing closing fence when a
// "Response:" line follows, and the older "Answer:" header when no "Response:"
// header is found. ok is false when no answer delimiter is found; plan
// then holds the text after the opener (the generation was likely cut off).
// Direct mode returns the whole trimmed text as the answer.
func SplitOutput(mode Mode, text string) (plan, answer string, ok bool) {
	// A model tuned on the layout before "Response:" writes "Answer:".
	return splitOutput(mode, text, []string{answerWord, legacyAnswer})
}

// splitOutput is SplitOutput with the accepted answer header words as a
// parameter, in order of preference.
func splitOutput(mode Mode, text string, answerWords []string) (plan, answer string, ok bool) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if !mode.HasPlan() {
		return "", strings.TrimSpace(text), mode.Valid()
	}
	lines := strings.Split(text, "\n")
	i := skipBlank(lines, 0)
	if i < len(lines) {
		if rest, isHdr := headerLine(lines[i], planWord); isHdr {
			if rest != "" { // "Plan: step one" on the header line itself
				lines[i] = rest
			} else {
				i = skipBlank(lines, i+1)
			}
		}
	}
	// For codeplan the opening fence may sit in the prompt (prefill), so a
	// closing fence is looked for either way.
	fenced := mode == CodePlan
	if i < len(lines) {
		if _, _, isFence := openingFence(lines[i]); isFence {
			fenced = true
			i++
		}
	}
	body := lines[i:]
	// Prefer the closing fence: inside the fence a "Response" line may be code.
	if fenced {
		for j, l := range body {
			if isBareFence(l) {
				k := skipBlank(body, j+1)
				if k < len(body) {
					if rest, isHdr := anyHeaderLine(body[k], answerWords); isHdr {
						return CleanPlan(strings.Join(body[:j], "\n")), joinAnswer(rest, body[k+1:]), true
					}
				}
				// A closed fence without an answer header: take the rest as the answer.
				if k < len(body) {
					return CleanPlan(strings.Join(body[:j], "\n")), strings.TrimSpace(strings.Join(body[k:], "\n")), true
				}
				return CleanPlan(strings.Join(body[:j], "\n")), "", false
			}
		}
	}
	for _, answerWord := range answerWords {
		for j, l := range body {
			rest, isHdr := headerLine(l, answerWord)
			if !isHdr {
				continue
			}
			planLines := body[:j]
			// Drop a dangling fence line right before the answer.
			for n := len(planLines); n > 0; n-- {
				if strings.TrimSpace(planLines[n-1]) == "" {
					continue
				}
				if isBareFence(planLines[n-1]) {
					planLines = planLines[:n-1]
				}
				break
			}
			return CleanPlan(strings.Join(planLines, "\n")), joinAnswer(rest, body[j+1:]), true
		}
	}
	return CleanPlan(strings.Join(body, "\n")), "", false
}

// anyHeaderLine is headerLine for the first of words that matches.
func anyHeaderLine(line string, words []string) (rest string, ok bool) {
	for _, w := range words {
		if rest, ok := headerLine(line, w); ok {
			return rest, true
		}
	}
	return "", false
}

// planStops lists the phase 1 stop strings of a plan mode.
func planStops(m Mode) []string {
	if m == CodePlan {
		return []string{"\n" + codeFenceClose, "\n" + answerWord + ":"}
	}
	return []string{"\n" + answerWord + ":"}
}

// checkPlanDelimiters rejects plans that contain their own closing delimiter.
func checkPlanDelimiters(mode Mode, plan string) error {
	for n, l := range strings.Split(plan, "\n") {
		if mode == CodePlan && isFenceLine(l) {
			return fmt.Errorf("plan line %d is a code fence (%q), which would end the plan early", n+1, l)
		}
		if mode == NLPlan {
			if _, isHdr := headerLine(l, answerWord); isHdr {
				return fmt.Errorf("plan line %d is a response header (%q), which would end the plan early", n+1, l)
			}
		}
	}
	return nil
}

// check validates the Prompter's fields.
func (p Prompter) check() error {
	if p.Chat == nil {
		return errors.New("Prompter.Chat is nil (use the model or planner.ChatML{})")
	}
	if !p.Mode.Valid() {
		return fmt.Errorf("Prompter.Mode %q is not direct, nlplan or codeplan", string(p.Mode))
	}
	if !p.Format.Valid() {
		return fmt.Errorf("Prompter.Format %q is not trained or prompted", string(p.Format))
	}
	return nil
}

// messages builds [system?] + history + [user], adding the prompted
// instruction to the new user message only.
func (p Prompter) messages(history []Message, user string) []Message {
	msgs := make([]Message, 0, len(history)+2)
	if p.System != "" {
		msgs = append(msgs, Message{Role: RoleSystem, Content: p.System})
	}
	msgs = append(msgs, history...)
	if p.Format == Prompted {
		switch p.Mode {
		case CodePlan:
			user = strings.TrimRight(user, " \t\n") + "\n\n" + CodePlanInstruction
		case NLPlan:
			user = strings.TrimRight(user, " \t\n") + "\n\n" + NLPlanInstruction
		}
	}
	return append(msgs, Message{Role: RoleUser, Content: user})
}

// render validates history and renders the conversation with the assistant header.
func (p Prompter) render(history []Message, user string) (string, error) {
	for i, m := range history {
		if err := checkRole(m.Role); err != nil {
			return "", fmt.Errorf("history message %d: %w", i, err)
		}
	}
	s, err := p.Chat.ApplyTemplate(p.messages(history, user), true)
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return s, nil
}

// headerLine reports whether line is a section header such as "Response:",
// "**Response:**", "### Response" or "RESPONSE: 42", and returns any text after the
// colon. The line must start at column 0 and the word must be capitalised, so
// that indented code such as "    answer: int = f()" never matches.
func headerLine(line, word string) (rest string, ok bool) {
	if line == "" || line[0] == ' ' || line[0] == '\t' {
		return "", false
	}
	t := strings.TrimLeft(strings.TrimSpace(line), "#*_ ")
	if len(t) < len(word) || (t[:len(word)] != word && t[:len(word)] != strings.ToUpper(word)) {
		return "", false
	}
	t = strings.TrimLeft(t[len(word):], "*_ ")
	if strings.HasPrefix(t, ":") {
		t = strings.TrimLeft(t[1:], "*_ ")
		return strings.TrimSpace(t), true
	}
	return "", t == ""
}

// joinAnswer joins text on the header line with the lines after it.
func joinAnswer(first string, rest []string) string {
	s := strings.Join(rest, "\n")
	if first != "" {
		s = first + "\n" + s
	}
	return strings.TrimSpace(s)
}

// skipBlank returns the index of the first non-blank line at or after i.
func skipBlank(lines []string, i int) int {
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	return i
}

// isBareFence reports whether line is a fence with no info string ("```", "~~~").
func isBareFence(line string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= 3 && (strings.Trim(t, "`") == "" || strings.Trim(t, "~") == "")
}

// isFenceLine reports whether line opens or closes a fenced block.
func isFenceLine(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~")
}

// commonPrefixLen returns the length of the longest common byte prefix.
func commonPrefixLen(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// excerpt returns up to 40 bytes of s around byte i, for error messages.
func excerpt(s string, i int) string {
	lo, hi := max(i-20, 0), min(i+20, len(s))
	return s[lo:hi]
}
