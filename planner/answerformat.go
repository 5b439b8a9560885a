package planner

import (
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// Hint is the answer-format instruction added to every question, the same
// in every mode so that the modes are compared on equal terms. It asks for
// the marker answer.Final reads first, in the form the item's kind is
// scored in.
func Hint(kind answer.Kind) string {
	const lead = "Finish your response with a final line of the form "
	switch kind {
	case answer.Number:
		return lead + `"The answer is N", where N is a single number.`
	case answer.Math:
		return lead + `"The answer is $X$", where X is the final result in LaTeX.`
	case answer.Choice:
		return lead + `"The answer is (X)", where X is the letter of the correct option.`
	case answer.YesNo:
		return lead + `"The answer is yes" or "The answer is no".`
	case answer.Short:
		return lead + `"The answer is X", where X is a short phrase, with no explanation.`
	case answer.ExactCase:
		return lead + `"The answer is X", where X is exactly the answer with its upper- and lower-case letters, with no explanation.`
	}
	return lead + `"The answer is X", where X is exactly the answer, with no explanation.`
}

// UserMessage is the user turn for a benchmark item: its question, a blank
// line and the answer-format Hint. eval sends it, and synth writes it as the
// prompt of training rows, so a model is trained on exactly what it is
// evaluated on.
func UserMessage(question string, kind answer.Kind) string {
	return strings.TrimSpace(question) + "\n\n" + Hint(kind)
}
