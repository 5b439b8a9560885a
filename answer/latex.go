package answer

import (
	"math/big"
	"regexp"
	"strings"
	"unicode"
)

// lastBoxed returns the content of the last \boxed{...} or \fbox{...} in s
// whose braces balance and hold something, honouring nested braces and
// escaped \{ \}. The brace-less form "\boxed 5" is read up to the next
// space or "$".
func lastBoxed(s string) (string, bool) {
	type hit struct{ at, cmdLen int }
	var hits []hit
	for _, cmd := range []string{`\boxed`, `\fbox`} {
		for off := 0; ; {
			k := strings.Index(s[off:], cmd)
			if k < 0 {
				break
			}
			hits = append(hits, hit{off + k, len(cmd)})
			off += k + len(cmd)
		}
	}
	// Try the right-most command first; fall back to earlier ones when its
	// braces never close (a truncated generation).
	for len(hits) > 0 {
		best := 0
		for i, h := range hits {
			if h.at > hits[best].at {
				best = i
			}
		}
		h := hits[best]
		hits = append(hits[:best], hits[best+1:]...)
		rest := s[h.at+h.cmdLen:]
		if rest != "" && unicode.IsLetter(rune(rest[0])) {
			continue // \boxedfoo is another command
		}
		trimmed := strings.TrimLeft(rest, " \t")
		if strings.HasPrefix(trimmed, "{") {
			if inner, ok := braceContent(trimmed); ok && strings.TrimSpace(inner) != "" {
				return strings.TrimSpace(inner), true
			}
			continue // unbalanced (truncated output) or empty box
		}
		if trimmed == "" || len(trimmed) == len(rest) {
			continue // "\boxed" at the end, or "\boxed5" glued
		}
		end := strings.IndexAny(trimmed, " \t\n$")
		if end < 0 {
			end = len(trimmed)
		}
		if end > 0 {
			return trimmed[:end], true
		}
	}
	return "", false
}

// braceContent returns what lies between the '{' at s[0] and its matching
// '}', or false when it never closes.
func braceContent(s string) (string, bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // \{ and \} are literal braces, not grouping
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return s[1:i], true
			}
		}
	}
	return "", false
}

var (
	mathDelimRe   = regexp.MustCompile(`^(?:\$\$?|\\\(|\\\[)([\s\S]*?)(?:\$\$?|\\\)|\\\])$`)
	leftRightDot  = regexp.MustCompile(`\\(?:left|right)\.`)
	leftRightRe   = regexp.MustCompile(`\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)([^a-zA-Z]|$)`)
	spacingCmdRe  = regexp.MustCompile(`\\(?:[!,;: ]|quad|qquad|displaystyle|textstyle)`)
	fracCmdRe     = regexp.MustCompile(`\\[dtc]frac`)
	degreeRe      = regexp.MustCompile(`\^\s*\{?\s*\\circ\s*\}?|°|\\degree`)
	textCmdRe     = regexp.MustCompile(`\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox)\s*\{`)
	unitPowerRe   = regexp.MustCompile(`^\^\{?[23]\}?\.?$`)
	unitWordRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z .]*(?:/[A-Za-z]+)?$`)
	unitSuffixRe  = regexp.MustCompile(`^(.*\d)\s*(?i:(?:square|sq\.?|cubic)\s+)?(?i:units?|cm|mm|km|meters?|metres?|centimeters?|millimeters?|kilometers?|inch|inches|feet|foot|ft|yards?|yd|miles?|mi|degrees?|dollars?|cents?|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|pounds?|lbs?|ounces?|oz|grams?|kg|kilograms?|liters?|litres?|ml|gallons?|mph)(?:\^\{?[23]\}?)?\.?$`)
	varAssignRe   = regexp.MustCompile(`^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?=(.+)$`)
	fracShortRe   = regexp.MustCompile(`\\frac(\d)(\d)`)
	fracShortARe  = regexp.MustCompile(`\\frac(\d)\{`)
	fracShortBRe  = regexp.MustCompile(`\\frac\{([^{}]*)\}(\d)`)
	sqrtShortRe   = regexp.MustCompile(`\\sqrt(\d+|[a-zA-Z])`)
	singleBraceRe = regexp.MustCompile(`([\^_])\{(.)\}`)
	leadingDotRe  = regexp.MustCompile(`(^|[^\d])\.(\d)`)
	thousandsRe   = regexp.MustCompile(`^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$`)
)

// normalizeMath rewrites a LaTeX answer into a canonical string so that
// notational variants compare equal: math delimiters, \left/\right,
// spacing commands, \dfrac/\tfrac, degree signs, percent and dollar signs,
// \text{} wrappers (dropped when they trail a number as a unit), unit
// words after a number, a leading "x =", whitespace, brace-less
// \frac12/\sqrt2, single-character ^{2} groups, ".5" and thousands
// separators. It never evaluates anything; equality of values is
// mathEqual's job.
func normalizeMath(s string) string {
	s = strings.TrimSpace(s)
	for {
		m := mathDelimRe.FindStringSubmatch(s)
		if m == nil {
			break
		}
		s = strings.TrimSpace(m[1])
	}
	s = strings.ReplaceAll(s, "−", "-")
	s = leftRightDot.ReplaceAllString(s, "")
	s = leftRightRe.ReplaceAllString(s, "$1")
	s = spacingCmdRe.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "~", "")
	s = fracCmdRe.ReplaceAllString(s, `\frac`)
	s = degreeRe.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, `\%`, "")
	s = strings.ReplaceAll(s, "%", "")
	s = strings.ReplaceAll(s, `\$`, "")
	s = strings.ReplaceAll(s, "$", "")
	s = strings.ReplaceAll(s, "π", `\pi`)
	s = strings.ReplaceAll(s, "∞", `\infty`)
	s = strings.ReplaceAll(s, `\leq`, `\le`)
	s = strings.ReplaceAll(s, `\geq`, `\ge`)
	s = strings.ReplaceAll(s, `\neq`, `\ne`)
	s = strings.ReplaceAll(s, "≤", `\le`)
	s = strings.ReplaceAll(s, "≥", `\ge`)
	s = unwrapText(strings.TrimSpace(s))
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ".")
	if m := unitSuffixRe.FindStringSubmatch(s); m != nil {
		s = m[1]
	}
	s = strings.Join(strings.Fields(s), "")
	if m := varAssignRe.FindStringSubmatch(s); m != nil && !strings.Contains(m[1], "=") {
		s = m[1]
	}
	s = fracShortRe.ReplaceAllString(s, `\frac{$1}{$2}`)
	s = fracShortARe.ReplaceAllString(s, `\frac{$1}{`)
	s = fracShortBRe.ReplaceAllString(s, `\frac{$1}{$2}`)
	s = sqrtShortRe.ReplaceAllString(s, `\sqrt{$1}`)
	s = singleBraceRe.ReplaceAllString(s, "$1$2")
	s = leadingDotRe.ReplaceAllString(s, "${1}0.$2")
	s = strings.TrimSuffix(s, ".")
	if thousandsRe.MatchString(s) {
		s = strings.ReplaceAll(s, ",", "")
	}
	return s
}

// unwrapText replaces \text{...}-style commands by their content, except
// that one standing at the very end after other content and holding only
// words (a unit such as "\text{ cm}^2" or "\text{ dollars}") is dropped.
func unwrapText(s string) string {
	for {
		loc := textCmdRe.FindStringIndex(s)
		if loc == nil {
			return s
		}
		open := loc[1] - 1
		inner, ok := braceContent(s[open:])
		if !ok {
			return s // unbalanced: leave as is rather than guess
		}
		end := open + len(inner) + 2
		before, after := s[:loc[0]], s[end:]
		afterUnit := strings.TrimSpace(after)
		trailing := afterUnit == "" || unitPowerRe.MatchString(afterUnit)
		content := strings.TrimSpace(inner)
		if trailing && strings.TrimSpace(before) != "" && unitWordRe.MatchString(content) {
			s = strings.TrimSpace(before)
			continue
		}
		s = before + inner + after
	}
}

var (
	plainNumRe = regexp.MustCompile(`^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$`)
	texFracRe  = regexp.MustCompile(`^([+-]?)\\frac\{([+-]?(?:\d+\.?\d*|\.\d+))\}\{([+-]?(?:\d+\.?\d*|\.\d+))\}$`)
	slashRe    = regexp.MustCompile(`^([+-]?\d+)/([+-]?\d+)$`)
	texSciRe   = regexp.MustCompile(`^([+-]?(?:\d+\.?\d*|\.\d+))(?:\\times|\\cdot|\*|×|x)10\^\{?([+-]?\d+)\}?$`)
)

// mathNumber evaluates a normalised answer that is, as a whole, a single
// rational number: an integer, a decimal, scientific notation, a/b or
// \frac{a}{b}. Anything else (2\sqrt{3}, \pi/2, x+1) is not evaluated.
func mathNumber(n string) (*big.Rat, bool) {
	if plainNumRe.MatchString(n) {
		m := strings.IndexAny(n, "eE")
		if m >= 0 && !expOK(n[m+1:]) {
			return nil, false
		}
		r, ok := new(big.Rat).SetString(n)
		return r, ok
	}
	if m := texFracRe.FindStringSubmatch(n); m != nil {
		num, ok1 := new(big.Rat).SetString(m[2])
		den, ok2 := new(big.Rat).SetString(m[3])
		if !ok1 || !ok2 || den.Sign() == 0 {
			return nil, false
		}
		r := num.Quo(num, den)
		if m[1] == "-" {
			r.Neg(r)
		}
		return r, true
	}
	if m := slashRe.FindStringSubmatch(n); m != nil {
		num, _ := new(big.Rat).SetString(m[1])
		den, _ := new(big.Rat).SetString(m[2])
		if den.Sign() == 0 {
			return nil, false
		}
		return num.Quo(num, den), true
	}
	if m := texSciRe.FindStringSubmatch(n); m != nil && expOK(m[2]) {
		r, ok := new(big.Rat).SetString(m[1] + "e" + m[2])
		return r, ok
	}
	return nil, false
}

// mathEqual decides whether two normalised answers are the same: equal
// strings; equal rational values (0.5, 1/2, \frac{1}{2}); case-insensitive
// equality of plain words ("Tuesday", "tuesday"); element-wise equality of
// tuples and intervals with identical brackets; equality as multisets of
// sets {..} and of bare comma-separated lists (the MATH convention for
// "list all solutions").
func mathEqual(a, b string) bool {
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	va, oka := mathNumber(a)
	vb, okb := mathNumber(b)
	if oka && okb {
		return numEqual(va, vb)
	}
	if oka != okb {
		return false
	}
	if !strings.Contains(a, `\`) && !strings.Contains(b, `\`) && len([]rune(a)) > 1 && strings.EqualFold(a, b) {
		return true
	}
	oa, ia, ca, encA := enclosed(a)
	ob, ib, cb, encB := enclosed(b)
	if encA && encB {
		if oa != ob || ca != cb {
			return false
		}
		ea, eb := splitTop(ia), splitTop(ib)
		if oa == "{" || oa == `\{` {
			return sameMultiset(ea, eb)
		}
		if len(ea) != len(eb) || len(ea) < 2 {
			return false
		}
		for i := range ea {
			if !mathEqual(ea[i], eb[i]) {
				return false
			}
		}
		return true
	}
	if encA || encB {
		return false
	}
	ea, eb := splitTop(a), splitTop(b)
	if len(ea) > 1 && len(eb) > 1 {
		return sameMultiset(ea, eb)
	}
	return false
}

// sameMultiset reports whether every element of xs pairs off with a
// mathEqual element of ys.
func sameMultiset(xs, ys []string) bool {
	if len(xs) != len(ys) {
		return false
	}
	used := make([]bool, len(ys))
outer:
	for _, x := range xs {
		for j, y := range ys {
			if !used[j] && mathEqual(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// enclosed reports whether s is wholly wrapped by one bracket pair (any of
// ( [ { \{ opening and ) ] } \} closing, so half-open intervals count),
// returning the brackets and the inside.
func enclosed(s string) (open, inner, closing string, ok bool) {
	openers := []string{`\{`, "(", "[", "{"}
	closers := []string{`\}`, ")", "]", "}"}
	for _, o := range openers {
		if !strings.HasPrefix(s, o) {
			continue
		}
		for _, c := range closers {
			if !strings.HasSuffix(s, c) || len(s) < len(o)+len(c) {
				continue
			}
			in := s[len(o) : len(s)-len(c)]
			if balanced(in) {
				return o, in, c, true
			}
		}
	}
	return "", "", "", false
}

// balanced reports whether brackets in s never close more than they open
// and end level, treating ( [ { alike so that "(1,2]" style intervals
// inside still count.
func balanced(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}') {
				if s[i+1] == '{' {
					depth++
				} else {
					depth--
				}
				i++
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		}
		if depth < 0 {
			return false
		}
	}
	return depth == 0
}

// splitTop splits s at commas that are not inside any bracket.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}') {
				if s[i+1] == '{' {
					depth++
				} else {
					depth--
				}
				i++
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
