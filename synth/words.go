package synth

import (
	"regexp"
	"strconv"
	"strings"
)

// Mask is the word that stands for every name, relation and number in a
// control plan (Worked.Control).
const Mask = "blank"

var planWord = regexp.MustCompile(`[A-Za-z]+|[0-9]+`)

// MaskPlan replaces every person's name, relation name and number of a
// code plan by Mask, keeping everything else (keywords, variable names,
// punctuation, indentation).
func MaskPlan(plan string) string {
	content := map[string]bool{}
	for _, n := range names {
		content[n] = true
	}
	for _, r := range Relations {
		content[r.Name] = true
	}
	return planWord.ReplaceAllStringFunc(plan, func(w string) string {
		if content[w] || (w[0] >= '0' && w[0] <= '9') {
			return Mask
		}
		return w
	})
}

// Words lists the words of the hops and branch families that a tokenizer
// trained for them should keep whole: the people's names, every relation
// word, the words of the facts, questions, plans and responses, the code
// keywords of the plans, the numbers 0–99, and Mask.
func Words() []string {
	out := append([]string{}, names...)
	for _, r := range Relations {
		out = append(out, r.Synonyms...)
	}
	out = append(out, strings.Fields(`is who of the If Otherwise so condition holds fails not Who
		Start from Find that person Give name Check whether so If Otherwise then
		The answer def solve return print if else for in python Plan Response user assistant`)...)
	out = append(out, Mask)
	for i := 0; i < 100; i++ {
		out = append(out, strconv.Itoa(i))
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, w := range out {
		if !seen[w] {
			seen[w] = true
			uniq = append(uniq, w)
		}
	}
	return uniq
}
