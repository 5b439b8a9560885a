package answer

import (
	"math/big"
	"regexp"
	"strings"
	"unicode"
)

// Verdict is the result of comparing one predicted answer with a gold
// answer. For Short and Exact kinds EM and F1 are the SQuAD-style exact
// match and token F1; for the other kinds, which have no partial credit,
// both are 1 when Correct and 0 otherwise.
type Verdict struct {
	// Correct is the headline judgement used for accuracy.
	Correct bool
	// EM is exact match after the kind's normalisation, 0 or 1.
	EM float64
	// F1 is token-overlap F1 in [0, 1].
	F1 float64
}

func binary(ok bool) Verdict {
	if ok {
		return Verdict{Correct: true, EM: 1, F1: 1}
	}
	return Verdict{}
}

// Score compares a predicted answer (normally Final's result) with a
// gold answer of the given kind. Gold answers may be given in their
// dataset form: "#### 72" or a whole GSM8K solution for Number, a MATH
// solution containing \boxed{} for Math. An empty prediction is never
// correct. Unknown kinds compare by Exact rules.
func Score(kind Kind, predicted, gold string) Verdict {
	if strings.TrimSpace(predicted) == "" {
		return Verdict{}
	}
	switch kind {
	case Number:
		g, gok := goldNumber(gold)
		p, pok := answerNumber(predicted)
		return binary(gok && pok && numEqual(p, g))
	case Math:
		return binary(mathEqual(normalizeMath(unboxed(predicted)), normalizeMath(unboxed(gold))))
	case Choice:
		g, gok := choiceLetter(gold)
		p, pok := choiceLetter(predicted)
		if gok && pok {
			return binary(g == p)
		}
		return binary(!gok && normalizeExact(predicted) == normalizeExact(gold))
	case YesNo:
		g, gok := yesNoOf(gold)
		p, pok := yesNoOf(predicted)
		return binary(gok && pok && g == p)
	case ExactCase:
		return binary(normalizeSpacing(predicted) == normalizeSpacing(gold))
	case Short:
		p, g := normalizeSQuAD(predicted), normalizeSQuAD(gold)
		em := p == g
		v := Verdict{Correct: em, F1: tokenF1(strings.Fields(p), strings.Fields(g))}
		if em {
			v.EM = 1
		}
		return v
	default:
		p, g := normalizeExact(predicted), normalizeExact(gold)
		if optionLabelRe.MatchString(g) {
			// "(A) Monday" commits to option (A) as much as "(A)" does.
			if m := labelledOptionRe.FindStringSubmatch(p); m != nil {
				p = "(" + m[1] + ")"
			}
		}
		em := p == g
		if !em {
			if gv, gok := mathNumber(strings.ReplaceAll(g, ",", "")); gok {
				pv, pok := mathNumber(strings.ReplaceAll(p, ",", ""))
				if !pok && allNumberWords(p) {
					pv, pok = wordNumber(p)
				}
				em = pok && numEqual(pv, gv)
			}
		}
		v := Verdict{Correct: em, F1: tokenF1(strings.Fields(p), strings.Fields(g))}
		if em {
			v.EM, v.F1 = 1, 1
		}
		return v
	}
}

// ScoreAny scores a prediction against several acceptable gold answers
// (for example HotpotQA/MuSiQue answer aliases) and keeps the best:
// correct beats incorrect, then higher F1. No golds gives a zero Verdict.
func ScoreAny(kind Kind, predicted string, golds []string) Verdict {
	var best Verdict
	for i, g := range golds {
		v := Score(kind, predicted, g)
		if i == 0 || (v.Correct && !best.Correct) || (v.Correct == best.Correct && v.F1 > best.F1) {
			best = v
		}
	}
	return best
}

// goldNumber reads a gold numeric answer, accepting the GSM8K "#### n"
// form (and whole solutions ending in it) and MATH's \boxed{}.
func goldNumber(gold string) (*big.Rat, bool) {
	if i := strings.LastIndex(gold, "####"); i >= 0 {
		gold = gold[i+4:]
	} else if inner, ok := lastBoxed(gold); ok {
		gold = inner
	}
	return answerNumber(gold)
}

// answerNumber reads a numeric answer string: first as a whole LaTeX or
// plain number ("1,000.00", "\frac{1}{2}", "$5", "25\%"), then by the
// answer-span rule of spanNumber ("12 apples", "x = 5").
func answerNumber(s string) (*big.Rat, bool) {
	if v, ok := mathNumber(normalizeMath(s)); ok {
		return v, true
	}
	return spanNumber(s)
}

// choiceLetter reads an option letter from an answer or gold string:
// "B", "b", "(B)", "B.", "B) 42", or any output Final understands.
func choiceLetter(s string) (string, bool) {
	t := strings.ToUpper(stripMarkup(s))
	if m := optionOnlyRe.FindStringSubmatch(t); m != nil {
		return m[1], true
	}
	return extractChoice(prepare(s), nil, false)
}

// yesNoOf reads "yes"/"no" from an answer or gold string, accepting
// true/false and any output Final understands.
func yesNoOf(s string) (string, bool) {
	if m := yesNoWholeRe.FindStringSubmatch(stripMarkup(s)); m != nil {
		return yesNoValue(m[1]), true
	}
	return extractYesNo(prepare(s), false)
}

var articlesRe = regexp.MustCompile(`\b(?:a|an|the)\b`)

// normalizeSQuAD is the SQuAD answer normalisation: lower-case, remove
// punctuation, remove the articles a/an/the, collapse whitespace.
func normalizeSQuAD(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, s)
	s = articlesRe.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}

var (
	optionLabelRe    = regexp.MustCompile(`^\(?([a-z])\)?$`)
	labelledOptionRe = regexp.MustCompile(`^\(([a-z])\)\s`)
)

// unboxed returns the content of the last \boxed{} in s, or s itself, so
// that both dataset solutions and raw outputs can be scored as Math.
func unboxed(s string) string {
	if inner, ok := lastBoxed(s); ok {
		return inner
	}
	return s
}

// normalizeExact is the BIG-Bench-Hard comparison form: Markdown and
// quotes stripped, trailing period dropped, whitespace collapsed,
// lower-cased, and a bare option label written as "(a)" so that "A" and
// "(A)" agree.
// normalizeSpacing is the ExactCase comparison form: markup, surrounding
// quotes, runs of white space and a trailing period do not count, letter
// case does.
func normalizeSpacing(s string) string {
	s = stripMarkup(s)
	s = strings.TrimRight(strings.TrimSpace(s), ".")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = s[1 : len(s)-1]
	}
	return s
}

func normalizeExact(s string) string {
	s = stripMarkup(s)
	s = strings.TrimRight(s, ".")
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	if m := optionLabelRe.FindStringSubmatch(s); m != nil {
		return "(" + m[1] + ")"
	}
	return s
}

// tokenF1 is the harmonic mean of token precision and recall with
// multiset overlap. Two empty answers agree fully; one empty does not.
func tokenF1(pred, gold []string) float64 {
	if len(pred) == 0 || len(gold) == 0 {
		if len(pred) == len(gold) {
			return 1
		}
		return 0
	}
	counts := make(map[string]int, len(gold))
	for _, t := range gold {
		counts[t]++
	}
	common := 0
	for _, t := range pred {
		if counts[t] > 0 {
			counts[t]--
			common++
		}
	}
	if common == 0 {
		return 0
	}
	p := float64(common) / float64(len(pred))
	r := float64(common) / float64(len(gold))
	return 2 * p * r / (p + r)
}

// allNumberWords reports whether s consists only of one or two number
// words ("eight", "twenty-one", "minus three"), so that "eight apples" is
// not taken for 8 in an exact-match comparison.
func allNumberWords(s string) bool {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' })
	if len(words) == 0 || len(words) > 3 {
		return false
	}
	for i, w := range words {
		if _, ok := numberWords[w]; ok {
			continue
		}
		if i == 0 && (w == "minus" || w == "negative") && len(words) > 1 {
			continue
		}
		return false
	}
	return true
}
