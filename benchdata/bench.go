// Package benchdata loads benchmark files that users provide (JSONL or JSON
// arrays) into uniform Items, recognising the common public shapes:
//
//   - GSM8K: "question", "answer" ending in "#### n" (Kind number; the
//     reasoning before "####" goes to Meta["solution"] and its non-empty
//     line count to Steps).
//   - MATH: "problem", "solution" with \boxed{} (or a separate "answer",
//     as in MATH-500) (Kind math).
//   - Multiple choice: "question" with "choices" or "options" given as a
//     list, a {"A": ...} object or an ARC-style {"label": [...], "text":
//     [...]}; "answer" / "answerKey" / "correct" / "label" as a letter, a
//     0-based index, a label, or the option text (Kind choice). Option
//     texts are appended to the question as "(A) ... (B) ...".
//   - StrategyQA: "question", boolean "answer" (Kind yesno; the length of
//     "decomposition" gives Steps).
//   - HotpotQA / MuSiQue: "question", "answer", optional "answer_aliases"
//     (Kind short). A MuSiQue id such as "3hop1__..." gives Steps = 3.
//   - BIG-Bench Hard: "input", "target" (Kind exact); a JSON object with an
//     "examples" array, as the BBH task files are, is read too.
//   - `codeplan synth` rows: "question", "answer", "steps" and a per-row
//     "answer_kind" (number, exact, exact_case, yesno), since the problem
//     families of one file are scored differently.
//
// The shape is detected once per file, from its first record, and every
// record must then fit it. Options override field names (as gjson paths)
// and the kind. A malformed record is an error naming file and line,
// unless Options.SkipBad is set, in which case it is skipped and reported
// in Loaded.Skipped.
package benchdata

import (
	"github.com/codeplan-dev/codeplan/answer"
)

// Item is one benchmark question with its gold answer.
type Item struct {
	// ID is unique within a file: the record's own id when it has one,
	// else "<file base name>-<record number>".
	ID string
	// Question is the text shown to the model, options included.
	Question string
	// Gold is the reference answer in the form answer.Score accepts.
	Gold string
	// Kind says how answers are extracted and scored.
	Kind answer.Kind
	// Steps is the number of reasoning steps (hops) when the data set
	// tells, 0 if unknown.
	Steps int
	// Choices are the option texts of a multiple-choice item, in letter
	// order (A first).
	Choices []string
	// Aliases are further acceptable gold answers (HotpotQA/MuSiQue
	// "answer_aliases"); see Golds.
	Aliases []string
	// Meta keeps the record's other scalar fields (level, type, subject,
	// ...) and, for GSM8K and MATH, the reference "solution".
	Meta map[string]string
}

// Golds returns every acceptable gold answer, Gold first, for use with
// answer.ScoreAny.
func (it Item) Golds() []string {
	return append([]string{it.Gold}, it.Aliases...)
}

// Options tunes Load. The zero value auto-detects everything and fails on
// the first malformed record.
type Options struct {
	// Kind forces the answer kind instead of detecting it.
	Kind answer.Kind
	// IDField, QuestionField, AnswerField, ChoicesField and StepsField
	// name the fields to use (gjson paths, e.g. "meta.answer") instead of
	// the detected ones.
	IDField, QuestionField, AnswerField, ChoicesField, StepsField string
	// SkipBad skips malformed records instead of failing; they are
	// listed in Loaded.Skipped.
	SkipBad bool
	// Limit keeps only the first Limit valid items when positive.
	Limit int
}

// Loaded is what LoadDetailed returns: the items and, with
// Options.SkipBad, one error per skipped record (each naming file and
// line).
type Loaded struct {
	Items   []Item
	Skipped []error
}
