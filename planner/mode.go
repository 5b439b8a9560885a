package planner

import (
	"fmt"
	"strings"
)

// Mode says whether and how the model plans before answering.
type Mode string

// The answer modes. Their string values appear in flags, config files and
// result tables, so they never change.
const (
	// Direct: the model answers straight away, with no plan (the baseline).
	Direct Mode = "direct"
	// NLPlan: the model first writes numbered natural-language steps.
	NLPlan Mode = "nlplan"
	// CodePlan: the model first writes a Python-style pseudocode plan (the method).
	CodePlan Mode = "codeplan"
)

// Modes lists every mode in a fixed order (baseline first), for help texts
// and for "all" in ParseModes.
func Modes() []Mode { return []Mode{Direct, NLPlan, CodePlan} }

// String returns the mode's name.
func (m Mode) String() string { return string(m) }

// Valid reports whether m is one of the defined modes.
func (m Mode) Valid() bool {
	switch m {
	case Direct, NLPlan, CodePlan:
		return true
	}
	return false
}

// HasPlan reports whether the mode writes a plan before the answer.
func (m Mode) HasPlan() bool { return m == NLPlan || m == CodePlan }

// PlanOpener is the assistant text that precedes the plan: "Plan:\n```python\n"
// for codeplan, "Plan:\n" for nlplan and "" for direct.
func (m Mode) PlanOpener() string {
	switch m {
	case CodePlan:
		return planHeader + codeFenceOpen
	case NLPlan:
		return planHeader
	}
	return ""
}

// AnswerOpener is the assistant text between the plan and the answer:
// "\n```\nResponse:\n" for codeplan, "\nResponse:\n" for nlplan and "" for direct.
func (m Mode) AnswerOpener() string {
	switch m {
	case CodePlan:
		return "\n" + codeFenceClose + "\n" + answerHeader
	case NLPlan:
		return "\n" + answerHeader
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler so modes read naturally in JSON.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("invalid mode %q", string(m))
	}
	return []byte(m), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseMode's rules.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMode parses a mode name, case-insensitively and ignoring surrounding spaces.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	if !m.Valid() {
		return "", fmt.Errorf("unknown mode %q (want direct, nlplan or codeplan)", s)
	}
	return m, nil
}

// ParseModes parses a comma-separated list such as "direct,codeplan", keeping
// the given order. "all" stands for every mode. Empty entries and duplicates
// are errors because they are almost always typos on a command line.
func ParseModes(s string) ([]Mode, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty mode list (want e.g. direct,codeplan)")
	}
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		return Modes(), nil
	}
	var out []Mode
	seen := map[Mode]bool{}
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			return nil, fmt.Errorf("mode list %q: entry %d is empty", s, i+1)
		}
		m, err := ParseMode(part)
		if err != nil {
			return nil, fmt.Errorf("mode list %q: entry %d: %w", s, i+1, err)
		}
		if seen[m] {
			return nil, fmt.Errorf("mode list %q: %s given twice", s, m)
		}
		seen[m] = true
		out = append(out, m)
	}
	return out, nil
}

// Format says how the plan is asked for: by the fine-tuned format alone, or by
// an explicit instruction for a model that was never trained on it.
type Format string

// The prompt formats.
const (
	// Trained: the user message is passed unchanged; the model learnt the
	// Plan:/Response: layout in fine-tuning (see the package doc).
	Trained Format = "trained"
	// Prompted: an instruction appended to the new user message asks an
	// untrained instruct model to produce the same layout. Direct mode adds no
	// instruction, so there it equals Trained.
	Prompted Format = "prompted"
)

// Formats lists every format.
func Formats() []Format { return []Format{Trained, Prompted} }

// String returns the format's name.
func (f Format) String() string { return string(f) }

// Valid reports whether f is one of the defined formats.
func (f Format) Valid() bool { return f == Trained || f == Prompted }

// MarshalText implements encoding.TextMarshaler.
func (f Format) MarshalText() ([]byte, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("invalid format %q", string(f))
	}
	return []byte(f), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseFormat's rules.
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// ParseFormat parses a format name, case-insensitively.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if !f.Valid() {
		return "", fmt.Errorf("unknown format %q (want trained or prompted)", s)
	}
	return f, nil
}

// Token limits every command uses unless told otherwise, defined once.
const (
	// DefaultMaxPlanTokens bounds a plan when answering (chat, generate,
	// serve, eval).
	DefaultMaxPlanTokens = 256
	// DefaultMaxTokens bounds an answer.
	DefaultMaxTokens = 512
	// DefaultExtractPlanTokens bounds an extracted plan. It is larger than
	// DefaultMaxPlanTokens on purpose: a plan cut by the limit is rejected
	// as not terminated, and the paper's template allows 200 words.
	DefaultExtractPlanTokens = 384
)
