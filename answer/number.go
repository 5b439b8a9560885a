package answer

import (
	"math/big"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// numToken is one number found in a text: its byte range (sign included)
// and its exact value. Values are big.Rat so that "0.1", "1/10" and
// "\frac{1}{10}" compare equal without floating-point noise.
type numToken struct {
	start, end int
	val        *big.Rat
}

// maxExponent bounds scientific-notation exponents so that a hostile or
// garbled output such as "1e999999999" cannot make big.Rat allocate
// gigabytes. No benchmark answer comes near it.
const maxExponent = 400

var (
	// "× 10^5", "x 10^{-3}", "\times 10^5", "\cdot 10^{5}", "* 10^5".
	timesTenRe = regexp.MustCompile(`^\s*(?:×|x|\*|\\times|\\cdot)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?`)
	// "^3", "^{-2}": a power of the number before it.
	powerRe = regexp.MustCompile(`^\s*\^\s*\{?\s*([+-]?\d+)\s*\}?`)
	// "Step 2", "Part 3": a label before the number makes it an
	// enumeration, not a quantity.
	enumeratorRe = regexp.MustCompile(`(?i)\b(?:step|part|stage|phase)\s*$`)
	// "1 1/2": the fraction part of a mixed number.
	mixedRe = regexp.MustCompile(`^ (\d+)/(\d+)`)
	// "2 million".
	magnitudeRe = regexp.MustCompile(`^\s+(?i:(thousand|million|billion|trillion))\b`)
	// "25%", "25 %", "25\%", "25 percent".
	percentRe = regexp.MustCompile(`^\s*(?:%|\\%|(?i:percent)\b)`)
)

var magnitudes = map[string]int64{
	"thousand": 1e3,
	"million":  1e6,
	"billion":  1e9,
	"trillion": 1e12,
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lastRuneIsWordy reports whether the text just before byte offset i ends
// in a letter, digit or underscore, i.e. whether a digit at i belongs to an
// identifier such as "x2" or "step3" rather than being a number of its own.
func lastRuneIsWordy(s string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// scanNumbers returns every number in s, left to right. It understands
// thousands separators ("1,234,567"), decimals (".5", "2.50"), fractions
// ("3/4"), mixed numbers ("1 1/2"), scientific notation ("1.5e3",
// "2 × 10^5"), magnitude words ("3 million"), percent signs (dropped:
// "25%" is 25) and negative signs ("-3", "-$3", "$-3", "(-3)"). Step
// labels ("Step 2") are enumerations, not numbers. A minus
// between two operands ("5-3") is subtraction, not a sign. Digits glued
// to a preceding letter ("x2", "H2O") are not numbers. Dates such as
// "12/25/2020" are skipped rather than read as fractions.
func scanNumbers(s string) []numToken {
	var out []numToken
	i := 0
	for i < len(s) {
		c := s[i]
		if !isDigit(c) && !(c == '.' && i+1 < len(s) && isDigit(s[i+1])) {
			i++
			continue
		}
		if lastRuneIsWordy(s, i) || (c == '.' && i > 0 && s[i-1] == '.') || isExponent(s, i) {
			// Skip the whole identifier or "..5"-style run.
			for i < len(s) && (isDigit(s[i]) || s[i] == '.' || s[i] == ',') {
				i++
			}
			continue
		}
		tok, next, ok := parseNumberAt(s, i)
		if ok && !enumeratorRe.MatchString(s[:tok.start]) {
			out = append(out, tok)
		}
		if next <= i {
			next = i + 1
		}
		i = next
	}
	return out
}

// parseNumberAt parses the number whose first digit (or leading '.') is at
// s[i]. It returns the token, the offset just past it, and whether it is a
// usable number (false for dates and division by zero, whose text is still
// consumed so the caller does not re-scan its parts).
func parseNumberAt(s string, i int) (numToken, int, bool) {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	intLen := j - i
	var b strings.Builder
	b.WriteString(s[i:j])
	plainInt := intLen > 0
	// Thousands separators: only after a first group of 1-3 digits and
	// only for groups of exactly three digits, so "1,2,3" stays a list.
	if intLen >= 1 && intLen <= 3 {
		for j+4 <= len(s) && s[j] == ',' &&
			isDigit(s[j+1]) && isDigit(s[j+2]) && isDigit(s[j+3]) &&
			(j+4 == len(s) || !isDigit(s[j+4])) {
			b.WriteString(s[j+1 : j+4])
			j += 4
			plainInt = false
		}
	}
	if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
		k := j + 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		b.WriteString(s[j:k])
		j = k
		plainInt = false
	}
	val := new(big.Rat)
	// Fraction "a/b" (integers only; "1,000/4" and "2.5/5" are not read).
	if plainInt && j+1 < len(s) && s[j] == '/' && isDigit(s[j+1]) {
		k := j + 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k+1 < len(s) && s[k] == '/' && isDigit(s[k+1]) {
			// A date like 12/25/2020: consume it whole, it is no answer.
			for k < len(s) && (isDigit(s[k]) || s[k] == '/') {
				k++
			}
			return numToken{}, k, false
		}
		num, den := s[i:j], s[j+1:k]
		if strings.Trim(den, "0") == "" {
			return numToken{}, k, false
		}
		val.SetString(num + "/" + den)
		j = k
		plainInt = false
	} else {
		// Scientific notation "1.5e3" / "2E-4", not "2eggs".
		if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
			k := j + 1
			if k < len(s) && (s[k] == '+' || s[k] == '-') {
				k++
			}
			d := k
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			if k > d && (k == len(s) || !unicode.IsLetter(rune(s[k]))) {
				exp := s[j+1 : k]
				if expOK(exp) {
					b.WriteString("e" + exp)
					j = k
					plainInt = false
				}
			}
		}
		if _, ok := val.SetString(b.String()); !ok {
			return numToken{}, j, false
		}
	}
	// "× 10^5".
	if m := timesTenRe.FindStringSubmatchIndex(s[j:]); m != nil {
		exp := s[j+m[2] : j+m[3]]
		if expOK(exp) {
			p := new(big.Rat)
			p.SetString("1e" + exp)
			val.Mul(val, p)
			j += m[1]
			plainInt = false
		}
	}
	// Mixed number "1 1/2" (proper fraction only, so "3 4/2" is not one).
	if plainInt {
		if m := mixedRe.FindStringSubmatchIndex(s[j:]); m != nil {
			end := j + m[1]
			if end == len(s) || (!isDigit(s[end]) && s[end] != '/') {
				num, _ := new(big.Int).SetString(s[j+m[2]:j+m[3]], 10)
				den, _ := new(big.Int).SetString(s[j+m[4]:j+m[5]], 10)
				if den.Sign() > 0 && num.Cmp(den) < 0 {
					val.Add(val, new(big.Rat).SetFrac(num, den))
					j = end
				}
			}
		}
	}
	// A power "2^{10}" or "10^3" is its value.
	if m := powerRe.FindStringSubmatchIndex(s[j:]); m != nil {
		if e, ok := smallInt(s[j+m[2] : j+m[3]]); ok && (e >= 0 || val.Sign() != 0) {
			p := new(big.Rat).SetInt64(1)
			base := new(big.Rat).Set(val)
			if e < 0 {
				base.Inv(base)
				e = -e
			}
			for ; e > 0; e-- {
				p.Mul(p, base)
			}
			val = p
			j += m[1]
		}
	}
	if m := magnitudeRe.FindStringSubmatchIndex(s[j:]); m != nil {
		word := strings.ToLower(s[j+m[2] : j+m[3]])
		val.Mul(val, new(big.Rat).SetInt64(magnitudes[word]))
		j += m[1]
	}
	if m := percentRe.FindStringIndex(s[j:]); m != nil {
		j += m[1]
	}
	start := i
	if neg, signAt := negativeSign(s, i); neg {
		val.Neg(val)
		start = signAt
	}
	return numToken{start: start, end: j, val: val}, j, true
}

// isExponent reports whether digits at s[i] are a superscript, as in
// "m^2", "x^{10}" or "a_{3}", which is never an answer on its own.
func isExponent(s string, i int) bool {
	j := i
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '{') {
		j--
	}
	return j > 0 && (s[j-1] == '^' || s[j-1] == '_')
}

// expOK reports whether an exponent string is small enough to evaluate.
func expOK(exp string) bool {
	exp = strings.TrimLeft(exp, "+-")
	exp = strings.TrimLeft(exp, "0")
	return len(exp) <= 3 && (exp == "" || atoiSmall(exp) <= maxExponent)
}

// maxPower bounds "a^b" exponents, which are evaluated exactly.
const maxPower = 64

// smallInt parses a signed exponent no larger than maxPower in size.
func smallInt(s string) (int, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	if len(s) > 3 {
		return 0, false
	}
	n := atoiSmall(s)
	if n > maxPower {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func atoiSmall(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// negativeSign reports whether the number starting at s[i] carries a
// minus sign, and where that sign is. The sign may be separated from the
// digits by a dollar sign ("-$5") or an opening parenthesis ("-(3)"). A minus directly after an operand
// ("5-3", "x-3", ")-3") is a binary minus and does not count.
func negativeSign(s string, i int) (bool, int) {
	k := i
	if k > 1 && s[k-1] == '(' && s[k-2] == '-' {
		k-- // "-(3)"
	}
	if k > 0 && s[k-1] == '$' {
		k--
		if k > 0 && s[k-1] == '\\' {
			k--
		}
	}
	if k == 0 || s[k-1] != '-' {
		return false, i
	}
	signAt := k - 1
	if signAt == 0 {
		return true, signAt
	}
	r, _ := utf8.DecodeLastRuneInString(s[:signAt])
	if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ')' || r == ']' || r == '}' || r == '.' || r == '_' {
		return false, i
	}
	return true, signAt
}

// formatRat renders an exact value canonically: integers without a
// decimal point ("1000"), terminating decimals without trailing zeros
// ("0.75"), anything else as a reduced fraction ("1/3").
func formatRat(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	d := new(big.Int).Set(r.Denom())
	two, five := big.NewInt(2), big.NewInt(5)
	digits := 0
	var twos, fives int
	m := new(big.Int)
	for m.Mod(d, two).Sign() == 0 {
		d.Quo(d, two)
		twos++
	}
	for m.Mod(d, five).Sign() == 0 {
		d.Quo(d, five)
		fives++
	}
	if d.Cmp(big.NewInt(1)) != 0 {
		return r.String()
	}
	digits = max(twos, fives)
	out := r.FloatString(digits)
	if strings.Contains(out, ".") {
		out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	}
	return out
}

// relTol is the relative tolerance for comparing non-integer answers.
const relTol = 1e-6

// numEqual compares two exact values. Equal values match. Otherwise, when
// at least one side is not an integer (a rounded decimal such as 0.333333
// against 1/3), values within a relative 1e-6 match. Two different
// integers never match, however large: 1000000 vs 1000001 is a wrong
// answer, not a rounding error.
func numEqual(a, b *big.Rat) bool {
	if a.Cmp(b) == 0 {
		return true
	}
	if a.IsInt() && b.IsInt() {
		return false
	}
	diff := new(big.Rat).Sub(a, b)
	diff.Abs(diff)
	aa, bb := new(big.Rat).Abs(a), new(big.Rat).Abs(b)
	m := aa
	if bb.Cmp(aa) > 0 {
		m = bb
	}
	tol := new(big.Rat).Mul(m, new(big.Rat).SetFloat64(relTol))
	return diff.Cmp(tol) <= 0
}

// numberWords maps spelled-out numbers to values, so that an explicit
// "The answer is twelve." is still read. Only used right after an answer
// marker, never when scanning free text, where words like "one" are
// mostly pronouns.
var numberWords = map[string]int64{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
	"thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
	"seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
	"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
	"eighty": 80, "ninety": 90,
}

var wordNumberRe = regexp.MustCompile(`^(?i)(?:minus\s+|negative\s+)?([a-z]+)(?:[-\s]([a-z]+))?`)

// wordNumber reads a spelled-out number of at most two words at the start
// of s ("twelve", "twenty-five", "minus three").
func wordNumber(s string) (*big.Rat, bool) {
	m := wordNumberRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil, false
	}
	first, ok := numberWords[strings.ToLower(m[1])]
	if !ok {
		return nil, false
	}
	v := first
	if m[2] != "" {
		if second, ok := numberWords[strings.ToLower(m[2])]; ok && first >= 20 && first%10 == 0 && second > 0 && second < 10 {
			v += second
		}
	}
	if lower := strings.ToLower(m[0]); strings.HasPrefix(lower, "minus") || strings.HasPrefix(lower, "negative") {
		v = -v
	}
	return new(big.Rat).SetInt64(v), true
}

// exprStartRe matches an arithmetic operator followed by an operand, i.e.
// text showing that the number before it is the start of an expression
// ("3 + 4 = 7") rather than the answer itself.
var exprStartRe = regexp.MustCompile(`^\s*(?:[-+*/×÷^·]|x|\\times|\\cdot|\\div)\s*[\d(\\.$]`)

// latexNumberCleaner rewrites LaTeX number spellings into plain text that
// scanNumbers reads: \frac{a}{b} (and \dfrac, \tfrac) with integer parts
// becomes a/b, "1{,}000" and "1,\!000" lose their LaTeX spacing, "\$" and
// "\%" lose their backslash.
var (
	latexFracRe   = regexp.MustCompile(`\\[dtc]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}`)
	latexFracBare = regexp.MustCompile(`\\[dtc]?frac\s*(\d)\s*(\d)`)
	latexSpacing  = regexp.MustCompile(`\\[!,;: ]`)
)

func cleanLatexNumbers(s string) string {
	s = strings.ReplaceAll(s, "{,}", ",")
	s = latexSpacing.ReplaceAllString(s, "")
	s = latexFracRe.ReplaceAllString(s, "$1/$2")
	s = latexFracBare.ReplaceAllString(s, "$1/$2")
	s = strings.ReplaceAll(s, `\$`, "$")
	s = strings.ReplaceAll(s, `\%`, "%")
	s = strings.ReplaceAll(s, "−", "-")
	return s
}

// spanNumber reads the answer from the text right after an answer marker
// (or from a predicted answer string). It takes the first number, except
// when that number opens an expression: then the answer is the first
// number after the last "=" ("3 + 4 = 7" gives 7), and an expression with
// no "=" gives nothing, because its first operand is not the answer.
// Without any digits, a spelled-out number at the start is accepted.
func spanNumber(span string) (*big.Rat, bool) {
	span = cleanLatexNumbers(span)
	toks := scanNumbers(span)
	if len(toks) == 0 {
		return wordNumber(stripMarkup(span))
	}
	first := toks[0]
	if !exprStartRe.MatchString(span[first.end:]) {
		return first.val, true
	}
	eq := strings.LastIndex(span, "=")
	if eq < first.end {
		return nil, false
	}
	for _, t := range toks {
		if t.start > eq {
			return t.val, true
		}
	}
	return nil, false
}

// stripMarkup removes Markdown emphasis, quotes and leading currency or
// LaTeX math delimiters that models wrap around answers.
func stripMarkup(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Trim(s, "*_`\"'“”‘’$ \t")
	return strings.TrimSpace(s)
}
