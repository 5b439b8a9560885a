package planner

import (
	"strings"
	"unicode"
)

// Reason says why Check kept or dropped a candidate plan. The values are
// stable snake_case strings used in data files and summaries.
type Reason string

// The reasons, in the order Check tests them (after OK).
const (
	OK                   Reason = "ok"
	NotTerminated        Reason = "not_terminated"
	Empty                Reason = "empty"
	NoCode               Reason = "no_code"
	Unbalanced           Reason = "unbalanced"
	DegenerateRepetition Reason = "degenerate_repetition"
	TooLong              Reason = "too_long"
	TooShort             Reason = "too_short"
	CopiesResponse       Reason = "copies_response"
)

// reasonText holds the one-line description of each reason.
var reasonText = map[Reason]string{
	OK:                   "plan kept",
	NotTerminated:        "generation hit the token limit before finishing (the paper's main filter)",
	Empty:                "model output is empty",
	NoCode:               "no code block or code-like lines found in the output",
	Unbalanced:           "unbalanced brackets or unterminated string: the code looks truncated",
	DegenerateRepetition: "the same line or word sequence is repeated many times",
	TooLong:              "plan has more words than the limit (extract --max-words, 200 by default)",
	TooShort:             "plan has fewer words than the minimum (extract --min-words, 5 by default)",
	CopiesResponse:       "plan largely copies the response text instead of abstracting it",
}

// Reasons lists every reason, OK first, in the order Check tests them.
func Reasons() []Reason {
	return []Reason{OK, NotTerminated, Empty, NoCode, Unbalanced, DegenerateRepetition, TooLong, TooShort, CopiesResponse}
}

// String returns the reason's snake_case name.
func (r Reason) String() string { return string(r) }

// Description returns a one-line explanation for summaries, or "" for an
// unknown reason.
func (r Reason) Description() string { return reasonText[r] }

// FilterConfig holds the limits of Filter. A zero field takes its default;
// a negative field turns its check off.
type FilterConfig struct {
	// MaxWords is the largest plan, in WordCount words. Default 200, from
	// the paper's "less than 200 words"; not_terminated stays the main filter.
	MaxWords int
	// MinWords is the smallest plan, in WordCount words. Default 5.
	MinWords int
	// MaxLineRepeats is how often one line of at least 8 characters may occur
	// before the plan counts as degenerate. Default 4.
	MaxLineRepeats int
	// RepeatNgram is the word n-gram size of the repetition check. Default 5.
	RepeatNgram int
	// MinUniqueNgrams is the smallest share of distinct word n-grams among all
	// n-grams (checked once there are at least 20) before the plan counts as
	// degenerate. Default 0.5.
	MinUniqueNgrams float64
	// CopyNgram is the word n-gram size of the copy check. Default 8.
	CopyNgram int
	// MaxCopyShare is the largest share of plan words that may lie in n-grams
	// shared with the response (n-grams also in the prompt do not count,
	// since restating the question is fine). Default 0.5.
	MaxCopyShare float64
	// KeepUnterminated keeps outputs that hit the token limit, for ablations.
	KeepUnterminated bool
}

// withDefaults fills zero fields with their defaults.
func (c FilterConfig) withDefaults() FilterConfig {
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setFloat := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&c.MaxWords, 200)
	setInt(&c.MinWords, 5)
	setInt(&c.MaxLineRepeats, 4)
	setInt(&c.RepeatNgram, 5)
	setFloat(&c.MinUniqueNgrams, 0.5)
	setInt(&c.CopyNgram, 8)
	setFloat(&c.MaxCopyShare, 0.5)
	return c
}

// Candidate is one extraction attempt to be judged.
type Candidate struct {
	Output        string // raw model output
	HitTokenLimit bool   // generation stopped at the token limit (did not terminate)
	Prompt        string // the source prompt the plan was extracted for
	Response      string // the source response the plan was extracted from
}

// Filter judges extracted plans. Its zero value uses the defaults.
type Filter struct {
	cfg   FilterConfig
	given FilterConfig
}

// NewFilter returns a Filter with cfg's limits (zero fields take defaults).
func NewFilter(cfg FilterConfig) *Filter { return &Filter{cfg: cfg.withDefaults(), given: cfg} }

// Given returns the limits as NewFilter was given them (zero fields not
// filled in), for the settings key of a run.
func (f *Filter) Given() FilterConfig {
	if f == nil {
		return FilterConfig{}
	}
	return f.given
}

// Config returns the effective limits, defaults filled in, for provenance.
func (f *Filter) Config() FilterConfig { return f.cfg.withDefaults() }

// Check extracts the plan from in.Output with FindCode and tests it, in the
// order of Reasons. It returns the extracted plan (or "" when there is none)
// and the first failing reason, or OK. The plan is returned for rejected
// candidates too, for inspection; only use it when the reason is OK.
func (f *Filter) Check(in Candidate) (plan string, reason Reason) {
	c := f.Config()
	plan, found := FindCode(in.Output)
	switch {
	case in.HitTokenLimit && !c.KeepUnterminated:
		return plan, NotTerminated
	case strings.TrimSpace(in.Output) == "":
		return "", Empty
	case !found:
		return "", NoCode
	case isUnbalanced(plan):
		return plan, Unbalanced
	case isDegenerate(plan, c):
		return plan, DegenerateRepetition
	}
	words := WordCount(plan)
	switch {
	case c.MaxWords > 0 && words > c.MaxWords:
		return plan, TooLong
	case c.MinWords > 0 && words < c.MinWords:
		return plan, TooShort
	case c.CopyNgram > 0 && c.MaxCopyShare > 0 &&
		copyShare(plan, in.Response, in.Prompt, c.CopyNgram) > c.MaxCopyShare:
		return plan, CopiesResponse
	}
	return plan, OK
}

// WordCount counts words: maximal runs of letters, digits and underscores
// (so an identifier such as compute_total is one word), with each Han, kana or
// Hangul character counted as one word. Punctuation and operators are not
// words.
func WordCount(s string) int { return len(words(s)) }

// words splits s into lower-cased words as defined by WordCount.
func words(s string) []string {
	var out []string
	start := -1
	for i, r := range s {
		switch {
		case isCJK(r):
			if start >= 0 {
				out = append(out, strings.ToLower(s[start:i]))
				start = -1
			}
			out = append(out, string(r))
		case isIdentRune(r):
			if start < 0 {
				start = i
			}
		default:
			if start >= 0 {
				out = append(out, strings.ToLower(s[start:i]))
				start = -1
			}
		}
	}
	if start >= 0 {
		out = append(out, strings.ToLower(s[start:]))
	}
	return out
}

// isCJK reports characters of scripts written without spaces between words.
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// isDegenerate reports a line repeated more than MaxLineRepeats times, or too
// few distinct word n-grams: the signature of a model stuck in a loop.
func isDegenerate(plan string, c FilterConfig) bool {
	if c.MaxLineRepeats > 0 {
		counts := map[string]int{}
		for _, l := range strings.Split(plan, "\n") {
			t := strings.TrimSpace(l)
			if len(t) < 8 {
				continue // "else:", "pass", "return x" legitimately recur
			}
			counts[t]++
			if counts[t] > c.MaxLineRepeats {
				return true
			}
		}
	}
	if c.RepeatNgram > 0 && c.MinUniqueNgrams > 0 {
		w := words(plan)
		total := len(w) - c.RepeatNgram + 1
		if total >= 20 {
			seen := map[string]bool{}
			for i := 0; i < total; i++ {
				seen[strings.Join(w[i:i+c.RepeatNgram], " ")] = true
			}
			if float64(len(seen))/float64(total) < c.MinUniqueNgrams {
				return true
			}
		}
	}
	return false
}

// copyShare returns the share of the plan's words covered by word n-grams that
// occur in the response but not in the prompt.
func copyShare(plan, response, prompt string, n int) float64 {
	pw := words(plan)
	if len(pw) < n {
		return 0
	}
	inResponse := ngramSet(words(response), n)
	if len(inResponse) == 0 {
		return 0
	}
	inPrompt := ngramSet(words(prompt), n)
	covered := make([]bool, len(pw))
	for i := 0; i+n <= len(pw); i++ {
		g := strings.Join(pw[i:i+n], " ")
		if inResponse[g] && !inPrompt[g] {
			for k := i; k < i+n; k++ {
				covered[k] = true
			}
		}
	}
	c := 0
	for _, v := range covered {
		if v {
			c++
		}
	}
	return float64(c) / float64(len(pw))
}

// ngramSet returns the set of word n-grams of w.
func ngramSet(w []string, n int) map[string]bool {
	set := map[string]bool{}
	for i := 0; i+n <= len(w); i++ {
		set[strings.Join(w[i:i+n], " ")] = true
	}
	return set
}

// isUnbalanced reports unmatched brackets or an unterminated string: code cut
// off mid-expression. Comments are skipped. A quote directly after a letter or
// digit is an apostrophe (user's, don't), as Python would not start a string
// there, unless the word before it is a string prefix such as f or rb.
func isUnbalanced(code string) bool {
	var stack []byte
	rs := []rune(code)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case '\'', '"':
			if !startsString(rs, i) {
				continue
			}
			end, ok := stringEnd(rs, i)
			if !ok {
				return true
			}
			i = end
		case '(', '[', '{':
			stack = append(stack, byte(r))
		case ')', ']', '}':
			open := map[rune]byte{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return true
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) > 0
}

// startsString reports whether the quote at rs[i] opens a string literal.
func startsString(rs []rune, i int) bool {
	j := i
	for j > 0 && isIdentRune(rs[j-1]) {
		j--
	}
	if j == i {
		return true
	}
	if j > 0 && (rs[j-1] == '.') {
		return false
	}
	switch strings.ToLower(string(rs[j:i])) {
	case "r", "b", "f", "u", "rb", "br", "fr", "rf":
		return true
	}
	return false
}

// stringEnd returns the index of the closing quote of the string opened at
// rs[i], or false when the string is not terminated (a one-quote string must
// end on its line).
func stringEnd(rs []rune, i int) (int, bool) {
	q := rs[i]
	if i+2 < len(rs) && rs[i+1] == q && rs[i+2] == q {
		for k := i + 3; k+2 < len(rs); k++ {
			if rs[k] == '\\' {
				k++
				continue
			}
			if rs[k] == q && rs[k+1] == q && rs[k+2] == q {
				return k + 2, true
			}
		}
		return 0, false
	}
	for k := i + 1; k < len(rs); k++ {
		switch rs[k] {
		case '\\':
			k++
		case '\n':
			return 0, false
		case q:
			return k, true
		}
	}
	return 0, false
}
