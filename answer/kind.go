package answer

import (
	"fmt"
	"strings"
)

// Kind names an answer format. It decides how an answer is found in a
// model's output (Final) and how two answers are compared (Score).
type Kind string

// The answer formats codeplan evaluates.
const (
	// Number is a single numeric answer, as in GSM8K (gold after "#### ").
	Number Kind = "number"
	// Math is a LaTeX answer as in MATH, normally given in \boxed{...}.
	Math Kind = "math"
	// Choice is a multiple-choice option letter (A, B, C, ...).
	Choice Kind = "choice"
	// YesNo is a yes/no (or true/false) answer, as in StrategyQA.
	YesNo Kind = "yesno"
	// Short is a short free-text answer scored by SQuAD-style exact match
	// and token F1, as in HotpotQA and MuSiQue.
	Short Kind = "short"
	// Exact is a BIG-Bench-Hard-style target compared by exact match after
	// light normalisation (case, surrounding whitespace, trailing period).
	Exact Kind = "exact"
	// ExactCase is Exact with letter case significant: for answers such as
	// the result of string manipulations, where "Abc" and "abc" differ.
	ExactCase Kind = "exact_case"
)

// Kinds lists every Kind, in a stable order, for help texts and validation.
var Kinds = []Kind{Number, Math, Choice, YesNo, Short, Exact, ExactCase}

// ParseKind turns a user-supplied name (case-insensitive, surrounding
// spaces ignored) into a Kind. Unknown names are an error that lists the
// accepted ones, so a typo in a flag fails loudly.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range Kinds {
		if k == known {
			return k, nil
		}
	}
	names := make([]string, len(Kinds))
	for i, known := range Kinds {
		names[i] = string(known)
	}
	return "", fmt.Errorf("unknown answer kind %q (want one of %s)", s, strings.Join(names, ", "))
}
