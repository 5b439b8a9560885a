package answer

import (
	"math/big"
	"regexp"
	"strings"
	"unicode"
)

var (
	// markerRe finds phrases that introduce a final answer: "The answer
	// is", "Final answer:", "answer =", "The answer to the question is",
	// "Answer (in dollars):". A connector word or sign is required, so
	// "to answer this, ..." is not a marker.
	markerRe = regexp.MustCompile(`(?i)\b(?:final\s+answer|answer)(?:\s+to\s+(?:the|this)\s+(?:question|problem))?\s*(?:\([^)\n]{0,30}\))?\s*(?:(?:is|was|would\s+be|will\s+be|should\s+be|must\s+be|equals)\b[ \t]*[:=]?|[:=→])[ \t]*`)
	// choiceMarkerRe adds phrasings used only for multiple choice.
	choiceMarkerRe = regexp.MustCompile(`(?i)\b(?:(?:correct|best|right)\s+(?:option|choice)(?:\s+(?:is|would\s+be))?|(?:option|choice)\s+(?:is|would\s+be)|i\s+(?:choose|pick|select)|i'?ll\s+(?:choose|pick|go\s+with))[ \t:]*`)
	hashMarkerRe   = regexp.MustCompile(`####[ \t]*`)
	// sentenceEndRe finds a sentence end inside an answer span.
	sentenceEndRe = regexp.MustCompile(`[.!?]+(?:\s|$)`)
	// reasonRe finds the start of a justification after a short answer.
	reasonRe = regexp.MustCompile(`(?i)(?:,\s*|\s+)(?:because|since|as\s+it|as\s+they|which\s+is|which\s+was)\b`)
	// reasoningStartRe recognises a marker followed by working rather than
	// an answer ("Answer: Step 1: ...", "Answer: Let's compute ..."), as
	// when a model echoes an "Answer:" prompt and then reasons.
	reasoningStartRe = regexp.MustCompile(`(?i)^(?:step\s*\d|first\b|let'?s\b|let\s+us\b|we\b|to\s+(?:find|solve|compute|calculate|determine|answer)\b)`)
	// inlineMathRe finds the first inline math segment of a span.
	inlineMathRe = regexp.MustCompile(`\$\$?([^$]+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\]`)
)

// abbreviations end in a period without ending a sentence.
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "jr": true,
	"sr": true, "vs": true, "etc": true, "no": true, "mt": true, "ft": true,
	"co": true, "inc": true, "ltd": true, "prof": true, "gen": true, "e.g": true,
	"i.e": true, "u.s": true, "u.k": true, "approx": true,
}

// emptyBoxRe matches an empty \boxed{}, which states no answer.
var emptyBoxRe = regexp.MustCompile(`\\(?:boxed|fbox)\s*\{\s*\}`)

// prepare makes a model output uniform before extraction: Windows line
// ends, Unicode minus signs, Markdown bold markers and empty boxes are
// normalised away.
func prepare(output string) string {
	s := strings.ReplaceAll(output, "\r\n", "\n")
	s = strings.ReplaceAll(s, "−", "-")
	s = strings.ReplaceAll(s, "**", "")
	return emptyBoxRe.ReplaceAllString(s, "")
}

// Final finds the final answer of the given kind in a model's output.
// It returns the answer in the form Score expects (numbers canonicalised,
// letters upper-cased, yes/no lower-cased) and whether anything was found.
// The order in which places are tried is documented in the package doc.
func Final(kind Kind, output string) (string, bool) {
	return final(kind, output, false)
}

// Strict is Final without the fallbacks: only an answer the output marks
// as its answer in a format a prompt asks for ("The answer is ...",
// "Final answer:", "####", \boxed{}) counts. The last number, first word or
// last line of free text is never read, so output without such a marker,
// gibberish included, has no strict answer. This is the strict column of
// eval's report (lm-evaluation-harness's strict-match); Final is its
// flexible column.
func Strict(kind Kind, output string) (string, bool) {
	return final(kind, output, true)
}

// StrictChoice is FinalChoice without fallbacks (see Strict).
func StrictChoice(output string, choices []string) (string, bool) {
	return extractChoice(prepare(output), choices, true)
}

func final(kind Kind, output string, strict bool) (string, bool) {
	text := prepare(output)
	switch kind {
	case Number:
		return extractNumber(text, strict)
	case Math:
		return extractMath(text, strict)
	case Choice:
		return extractChoice(text, nil, strict)
	case YesNo:
		return extractYesNo(text, strict)
	case Short, Exact, ExactCase:
		return extractText(text, strict)
	}
	return "", false
}

// FinalChoice is Final for multiple choice when the option texts are
// known: besides letters it accepts an answer that names exactly one
// option's text ("The answer is Paris" for "(B) Paris"). A text that
// matches several options is not an answer.
func FinalChoice(output string, choices []string) (string, bool) {
	return extractChoice(prepare(output), choices, false)
}

// markerSpans returns the text after each answer marker, last marker
// first, so that a restated answer wins over an earlier one. The span
// runs to the end of the marker's line, or covers the next non-empty
// line when the marker ends its line ("Answer:\n42").
func markerSpans(text string, res ...*regexp.Regexp) []string {
	type span struct {
		at   int
		text string
	}
	var spans []span
	for _, re := range res {
		for _, loc := range re.FindAllStringIndex(text, -1) {
			spans = append(spans, span{loc[0], lineAfter(text, loc[1])})
		}
	}
	// Insertion sort, descending position: there are only a few markers.
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].at > spans[j-1].at; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.text
	}
	return out
}

// lineAfter returns the rest of the line starting at offset i, or the next
// non-empty line when the rest is blank.
func lineAfter(text string, i int) string {
	rest := text[i:]
	nl := strings.IndexByte(rest, '\n')
	if nl < 0 {
		return strings.TrimSpace(rest)
	}
	if line := strings.TrimSpace(rest[:nl]); line != "" {
		return line
	}
	for _, line := range strings.Split(rest[nl+1:], "\n") {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return ""
}

// cutSentence keeps the first sentence of a span. A period after a known
// abbreviation or a single capital initial ("J. K. Rowling") does not end
// a sentence.
func cutSentence(s string) string {
	off := 0
	for {
		loc := sentenceEndRe.FindStringIndex(s[off:])
		if loc == nil {
			return s
		}
		end := off + loc[0]
		if s[end] == '.' && isAbbreviation(s[:end]) {
			off = off + loc[1]
			if off >= len(s) {
				return s
			}
			continue
		}
		return s[:end]
	}
}

// isAbbreviation reports whether the text before a period ends in an
// abbreviation or a single letter.
func isAbbreviation(before string) bool {
	i := len(before)
	for i > 0 && (unicode.IsLetter(rune(before[i-1])) || before[i-1] == '.') {
		i--
	}
	word := strings.ToLower(before[i:])
	if word == "" {
		return false
	}
	return abbreviations[word] || len(word) == 1 || (len(word) == 3 && word[1] == '.')
}

func extractNumber(text string, strict bool) (string, bool) {
	if content, ok := lastBoxed(text); ok {
		if v, ok := boxedNumber(content); ok {
			return formatRat(v), true
		}
		// A boxed non-number is the model's answer; report it as given
		// rather than hunting for some other number in the text.
		return content, true
	}
	for _, span := range markerSpans(text, hashMarkerRe) {
		if v, ok := spanNumber(span); ok {
			return formatRat(v), true
		}
	}
	for _, span := range markerSpans(text, markerRe) {
		if reasoningStartRe.MatchString(span) {
			continue
		}
		if v, ok := spanNumber(cutSentence(span)); ok {
			return formatRat(v), true
		}
	}
	if strict {
		return "", false
	}
	toks := scanNumbers(cleanLatexNumbers(text))
	if len(toks) == 0 {
		return "", false
	}
	return formatRat(toks[len(toks)-1].val), true
}

// boxedNumber reads a number from boxed content, which must be a number
// as a whole ("\frac{1}{3}", "x = 5", "18 \text{ dollars}") or start with
// one ("18 apples"); "x+1" is not read as 1.
func boxedNumber(content string) (*big.Rat, bool) {
	if v, ok := mathNumber(normalizeMath(content)); ok {
		return v, true
	}
	cleaned := strings.TrimSpace(cleanLatexNumbers(stripMarkup(content)))
	toks := scanNumbers(cleaned)
	if len(toks) == 0 || toks[0].start != 0 {
		return nil, false
	}
	return spanNumber(cleaned)
}

func extractMath(text string, strict bool) (string, bool) {
	if content, ok := lastBoxed(text); ok {
		return content, true
	}
	for _, span := range markerSpans(text, hashMarkerRe, markerRe) {
		if reasoningStartRe.MatchString(span) {
			continue
		}
		if m := inlineMathRe.FindStringSubmatch(span); m != nil {
			for _, g := range m[1:] {
				if strings.TrimSpace(g) != "" {
					return strings.TrimSpace(g), true
				}
			}
		}
		if s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cutSentence(span)), ".")); s != "" {
			return s, true
		}
	}
	if strict {
		return "", false
	}
	toks := scanNumbers(cleanLatexNumbers(text))
	if len(toks) == 0 {
		return "", false
	}
	return formatRat(toks[len(toks)-1].val), true
}

var (
	letterParenRe = regexp.MustCompile(`^\(([A-Ja-j])\)`)
	letterUpperRe = regexp.MustCompile(`^([A-J])(?:[^A-Za-z0-9'’]|$)`)
	letterLowerRe = regexp.MustCompile(`^([a-j])(?:[.,;:!)]?$|[.,;:!)]\s)`)
	pronounIRe    = regexp.MustCompile(`^I\s+[a-z]`)
	letterLeadRe  = regexp.MustCompile(`(?i)^(?:option|choice|letter)\s+`)
	// A line that is only an option: "B", "(B)", "B.", "B)".
	optionOnlyRe = regexp.MustCompile(`^\(?([A-J])\)?[.:]?$`)
	// A line that starts with an option label and then its text: "(B) 42",
	// "B) 42", "B. 42", "B: 42".
	optionLineRe = regexp.MustCompile(`^(?:\(([A-J])\)|([A-J])[).:])\s+\S`)
)

// letterFrom reads an option letter at the start of an answer span. A
// capital letter counts when not followed by more letters ("B because"),
// a lower-case one only when followed by punctuation or nothing, so that
// "the answer is a triangle" is not read as option A.
func letterFrom(span string) (string, bool) {
	s := stripMarkup(span)
	s = unwrapText(s)
	s = stripMarkup(s)
	s = letterLeadRe.ReplaceAllString(s, "")
	if m := letterParenRe.FindStringSubmatch(s); m != nil {
		return strings.ToUpper(m[1]), true
	}
	if m := letterUpperRe.FindStringSubmatch(s); m != nil {
		// "I think ..." is a pronoun, not option I.
		if m[1] != "I" || !pronounIRe.MatchString(s) {
			return m[1], true
		}
	}
	if m := letterLowerRe.FindStringSubmatch(s); m != nil {
		return strings.ToUpper(m[1]), true
	}
	return "", false
}

func extractChoice(text string, choices []string, strict bool) (string, bool) {
	if content, ok := lastBoxed(text); ok {
		if l, ok := letterFrom(content); ok {
			return l, true
		}
		if l, ok := matchChoiceText(content, choices, false); ok {
			return l, true
		}
	}
	for _, span := range markerSpans(text, markerRe, choiceMarkerRe) {
		if l, ok := letterFrom(span); ok {
			return l, true
		}
		if l, ok := matchChoiceText(cutSentence(span), choices, false); ok {
			return l, true
		}
	}
	lines := nonEmptyLines(text)
	if strict || len(lines) == 0 {
		return "", false
	}
	for _, line := range []string{lines[len(lines)-1], lines[0]} {
		s := stripMarkup(line)
		if m := optionOnlyRe.FindStringSubmatch(s); m != nil {
			return m[1], true
		}
		if m := optionLineRe.FindStringSubmatch(s); m != nil {
			return m[1] + m[2], true
		}
	}
	for _, line := range []string{lines[len(lines)-1], lines[0]} {
		if l, ok := matchChoiceText(strings.TrimSuffix(stripMarkup(line), "."), choices, true); ok {
			return l, true
		}
	}
	return "", false
}

// matchChoiceText maps answer text to the letter of the one option it
// names. With whole set it must equal the option text (after SQuAD-style
// normalisation); otherwise the option may also appear inside it as a
// whole phrase, provided no other option does (options contained in a
// longer matching option do not count, so "dark red" beats "red").
func matchChoiceText(s string, choices []string, whole bool) (string, bool) {
	if len(choices) == 0 {
		return "", false
	}
	norm := normalizeSQuAD(s)
	if norm == "" {
		return "", false
	}
	for i, c := range choices {
		if i < 26 && normalizeSQuAD(c) == norm {
			return string(rune('A' + i)), true
		}
	}
	if whole {
		return "", false
	}
	padded := " " + norm + " "
	var hits []int
	for i, c := range choices {
		nc := normalizeSQuAD(c)
		if i < 26 && nc != "" && strings.Contains(padded, " "+nc+" ") {
			hits = append(hits, i)
		}
	}
	var kept []int
	for _, i := range hits {
		inner := " " + normalizeSQuAD(choices[i]) + " "
		covered := false
		for _, j := range hits {
			outer := " " + normalizeSQuAD(choices[j]) + " "
			if i != j && len(outer) > len(inner) && strings.Contains(outer, inner) {
				covered = true
			}
		}
		if !covered {
			kept = append(kept, i)
		}
	}
	if len(kept) == 1 {
		return string(rune('A' + kept[0])), true
	}
	return "", false
}

func nonEmptyLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(line); t != "" {
			out = append(out, t)
		}
	}
	return out
}

var (
	yesNoWordRe  = regexp.MustCompile(`(?i)^(yes|no|true|false)(?:[^a-z]|$)`)
	yesNoWholeRe = regexp.MustCompile(`(?i)^(yes|no|true|false)[.!]?$`)
)

// yesNoValue maps yes/true to "yes" and no/false to "no".
func yesNoValue(w string) string {
	switch strings.ToLower(w) {
	case "yes", "true":
		return "yes"
	case "no", "false":
		return "no"
	}
	return ""
}

func extractYesNo(text string, strict bool) (string, bool) {
	if content, ok := lastBoxed(text); ok {
		if m := yesNoWordRe.FindStringSubmatch(stripMarkup(unwrapText(content))); m != nil {
			return yesNoValue(m[1]), true
		}
	}
	for _, span := range markerSpans(text, markerRe) {
		if m := yesNoWordRe.FindStringSubmatch(stripMarkup(span)); m != nil {
			return yesNoValue(m[1]), true
		}
	}
	lines := nonEmptyLines(text)
	if strict || len(lines) == 0 {
		return "", false
	}
	if m := yesNoWordRe.FindStringSubmatch(stripMarkup(lines[0])); m != nil {
		return yesNoValue(m[1]), true
	}
	if m := yesNoWholeRe.FindStringSubmatch(stripMarkup(lines[len(lines)-1])); m != nil {
		return yesNoValue(m[1]), true
	}
	return "", false
}

// extractText serves Short and Exact answers: the first sentence after
// the last answer marker (without a trailing justification such as
// "because ..."), else the boxed content, else the output itself when it
// is one line, else its last non-empty line.
func extractText(text string, strict bool) (string, bool) {
	for _, span := range markerSpans(text, markerRe) {
		s := cutSentence(span)
		if loc := reasonRe.FindStringIndex(s); loc != nil && loc[0] > 0 {
			s = s[:loc[0]]
		}
		s = cleanTextAnswer(s)
		if s != "" {
			return s, true
		}
	}
	if content, ok := lastBoxed(text); ok {
		if s := cleanTextAnswer(unwrapText(content)); s != "" {
			return s, true
		}
	}
	lines := nonEmptyLines(text)
	if strict || len(lines) == 0 {
		return "", false
	}
	s := cleanTextAnswer(lines[len(lines)-1])
	return s, s != ""
}

// cleanTextAnswer strips decoration around a free-text answer: Markdown,
// quotes, a trailing period and LaTeX \boxed/\text wrappers.
func cleanTextAnswer(s string) string {
	s = stripMarkup(s)
	if inner, ok := lastBoxed(s); ok && strings.HasPrefix(strings.TrimLeft(s, "$\\( "), `boxed`) {
		s = inner
	}
	s = stripMarkup(unwrapText(s))
	s = strings.TrimRight(s, ".")
	return stripMarkup(s)
}
