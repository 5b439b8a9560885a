package planner

import (
	"regexp"
	"strings"
	"unicode"
)

// FindCode finds the code-form plan in a model's output and normalises it.
//
// Fenced blocks (``` or ~~~, with or without a language tag) win over
// unfenced code. Among several blocks, Python-tagged ones (python, py,
// python3) beat untagged or pseudocode/text ones, which beat other
// languages; ties go to the block with the most non-blank lines, then to the
// first. A Python-tagged block is trusted as it is; any other block must hold
// at least one code-like line. A fence left open at the end of the output
// (the generation was cut off) runs to the end.
//
// Without a usable fence, the longest run of code-like lines is taken: lines
// starting with a Python keyword, comments, assignments, calls, plus
// indented lines and blank lines inside the run. Surrounding prose is
// dropped. Such a run needs two code-like lines, unless it is the whole output.
//
// The result is normalised: CRLF to LF, tabs to 4 spaces, trailing spaces
// removed, runs of blank lines collapsed to one, blank lines at both ends
// removed and common indentation removed. ok is false when no code is found.
func FindCode(output string) (code string, ok bool) {
	output = strings.ReplaceAll(output, "\r\n", "\n")
	output = strings.ReplaceAll(output, "\r", "\n")
	lines := strings.Split(output, "\n")

	best, bestRank, bestLen := "", 0, 0
	for _, b := range fencedBlocks(lines) {
		norm := normalizeCode(b.content)
		if norm == "" {
			continue
		}
		rank := langRank(b.lang)
		if rank < 3 && !hasCodeLine(norm) {
			continue
		}
		n := nonBlankLines(norm)
		if rank > bestRank || (rank == bestRank && n > bestLen) {
			best, bestRank, bestLen = norm, rank, n
		}
	}
	if best != "" {
		return best, true
	}
	if code := unfencedCode(lines); code != "" {
		return code, true
	}
	return "", false
}

// block is one fenced block of an output.
type block struct {
	lang    string // lower-cased first word of the info string
	content string
}

// openingFence reports whether line opens a fenced block and returns the
// fence run ("```", "~~~~", ...) and the info string after it.
func openingFence(line string) (fence, info string, ok bool) {
	t := strings.TrimSpace(line)
	if len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return "", "", false
	}
	c := t[0]
	n := 0
	for n < len(t) && t[n] == c {
		n++
	}
	if n < 3 {
		return "", "", false
	}
	return t[:n], strings.TrimSpace(t[n:]), true
}

// fencedBlocks returns the fenced blocks of lines in order. A fence closes at a
// line made only of the same character, at least as long as the opening run.
// A backtick line such as "```python x = 1```" is a one-line block.
func fencedBlocks(lines []string) []block {
	var out []block
	for i := 0; i < len(lines); i++ {
		fence, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		if fence[0] == '`' && strings.Contains(info, "`") {
			out = append(out, inlineBlock(info))
			continue
		}
		lang := ""
		if f := strings.Fields(info); len(f) > 0 {
			lang = strings.ToLower(strings.Trim(f[0], "{}."))
		}
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if len(t) >= len(fence) && strings.Trim(t, fence[:1]) == "" {
				break
			}
			body = append(body, lines[j])
		}
		out = append(out, block{lang: lang, content: strings.Join(body, "\n")})
		i = j // the closing fence (or the end) is not an opening fence
	}
	return out
}

// inlineBlock parses the info string of a one-line block, "python x = 1```".
func inlineBlock(info string) block {
	content := strings.TrimRight(strings.TrimSpace(info), "`")
	lang := ""
	if f := strings.Fields(content); len(f) > 1 && langRank(strings.ToLower(f[0])) == 3 {
		lang = strings.ToLower(f[0])
		content = strings.TrimSpace(content[len(f[0]):])
	}
	return block{lang: lang, content: content}
}

// langRank orders fence languages: 3 Python, 2 untagged or plain text or
// pseudocode, 1 anything else.
func langRank(lang string) int {
	switch lang {
	case "python", "py", "python3", "py3":
		return 3
	case "", "pseudocode", "pseudo", "pseudo-code", "plaintext", "text", "txt", "code", "plan":
		return 2
	}
	return 1
}

// Code-like line patterns, matched against a line without its indentation.
var (
	// Compound statements must end with a colon (and maybe a comment), so that
	// prose such as "for example, we..." is not taken for code.
	compoundRE = regexp.MustCompile(`^(def|class|if|elif|else|for|while|try|except|finally|with|async\s+def|async\s+for|async\s+with)\b.*:\s*(#.*)?$`)
	simpleRE   = regexp.MustCompile(`^(return|yield|raise|assert|import|pass|break|continue|global|nonlocal|await)([\s(\[{'"]|$)`)
	fromRE     = regexp.MustCompile(`^from\s+[\w.]+\s+import\b`)
	assignRE   = regexp.MustCompile(`^[A-Za-z_][\w.]*(\[[^\]]*\])?(\s*,\s*[A-Za-z_][\w.]*)*\s*(=|\+=|-=|\*=|/=|//=|%=|\*\*=|\|=|&=)\s*[^=\s]`)
	annotRE    = regexp.MustCompile(`^[A-Za-z_]\w*\s*:\s*[A-Za-z_][\w.\[\], ]*\s*=\s*\S`)
	callRE     = regexp.MustCompile(`^[A-Za-z_][\w.]*\(.*\)\s*:?\s*(#.*)?$`)
)

// isCodeLine reports whether a line looks like Python (pseudo)code.
func isCodeLine(line string) bool {
	t := strings.TrimSpace(line)
	if t == "" {
		return false
	}
	if strings.HasPrefix(t, "#") || strings.HasPrefix(t, "@") ||
		strings.HasPrefix(t, `"""`) || strings.HasPrefix(t, "'''") {
		return true
	}
	return compoundRE.MatchString(t) || simpleRE.MatchString(t) || fromRE.MatchString(t) ||
		assignRE.MatchString(t) || annotRE.MatchString(t) || callRE.MatchString(t)
}

// hasCodeLine reports whether any line of s is code-like.
func hasCodeLine(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		if isCodeLine(l) {
			return true
		}
	}
	return false
}

// unfencedCode returns the normalised longest run of code-like lines, or "".
// A run is a code-like line followed by code-like, indented, bracket-closing
// and blank lines; fence lines never belong to one. Runs are compared by their
// non-blank lines. A run counts when it has two code-like lines, or a compound
// statement ("def f():") with an indented body, or is all the output there is.
func unfencedCode(lines []string) string {
	type run struct {
		start, end     int  // line range, end exclusive, trailing blanks excluded
		lines, code    int  // non-blank lines, code-like lines
		compound, body bool // has a "...:" header; has an indented line after it
	}
	var best, cur run
	inRun := false
	nonBlank := 0
	flush := func() {
		if inRun && cur.lines > best.lines {
			best = cur
		}
		inRun = false
	}
	for i, l := range lines {
		blank := strings.TrimSpace(l) == ""
		if !blank {
			nonBlank++
		}
		switch {
		case isFenceLine(l):
			flush()
		case isCodeLine(l):
			if !inRun {
				cur, inRun = run{start: i}, true
			}
			if cur.compound && startsIndented(l) {
				cur.body = true
			}
			if compoundRE.MatchString(strings.TrimSpace(l)) {
				cur.compound = true
			}
			cur.code++
			cur.lines++
			cur.end = i + 1
		case inRun && (blank || startsIndented(l) || isClosingBracketLine(l)):
			if !blank {
				cur.body = cur.body || (cur.compound && startsIndented(l))
				cur.lines++
				cur.end = i + 1
			}
		default:
			flush()
		}
	}
	flush()
	if best.code == 0 || (best.code < 2 && !best.body && best.lines != nonBlank) {
		return ""
	}
	return normalizeCode(strings.Join(lines[best.start:best.end], "\n"))
}

// startsIndented reports whether a line starts with a space or a tab.
func startsIndented(l string) bool {
	return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
}

// isClosingBracketLine reports lines such as ")" or "]," that end a literal.
func isClosingBracketLine(l string) bool {
	t := strings.TrimSpace(l)
	return t != "" && strings.Trim(t, ")]}, ") == ""
}

// normalizeCode applies FindCode's whitespace normalisation.
func normalizeCode(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\t", "    ")
	var lines []string
	blank := false
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank = len(lines) > 0 // drop leading blank lines, remember others
			continue
		}
		if blank {
			lines = append(lines, "")
			blank = false
		}
		lines = append(lines, l)
	}
	indent := -1
	for _, l := range lines {
		if l == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	if indent > 0 {
		for i, l := range lines {
			if l != "" {
				lines[i] = l[indent:]
			}
		}
	}
	return strings.Join(lines, "\n")
}

// nonBlankLines counts the non-blank lines of s.
func nonBlankLines(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// isIdentRune reports letters, digits and underscores.
func isIdentRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
