package llama

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRepeat bounds {m,n} repetition counts in grammars: llama.cpp expands
// them into rules, so huge counts exhaust memory and time.
const maxRepeat = 1000

// checkGrammar rejects GBNF that llama.cpp's parser would not fail on
// cleanly: a repetition {m,n} with m > n makes it loop forever, and huge
// counts blow up. Quoted literals, character classes and comments are
// skipped, so their braces are not mistaken for repetitions.
func checkGrammar(g string) error {
	for i := 0; i < len(g); i++ {
		switch g[i] {
		case '"', '[':
			end := byte('"')
			if g[i] == '[' {
				end = ']'
			}
			for i++; i < len(g) && g[i] != end; i++ {
				if g[i] == '\\' {
					i++
				}
			}
		case '#':
			for i < len(g) && g[i] != '\n' {
				i++
			}
		case '{':
			j := i + 1
			for j < len(g) && g[j] != '}' {
				j++
			}
			if j >= len(g) {
				return nil // unterminated: llama.cpp reports it
			}
			body := g[i+1 : j]
			lo, hi, hasHi := body, "", false
			for k := 0; k < len(body); k++ {
				if body[k] == ',' {
					lo, hi, hasHi = body[:k], body[k+1:], true
					break
				}
			}
			m, err := strconv.Atoi(strings.TrimSpace(lo))
			if err != nil {
				continue // not a repetition; let llama.cpp judge
			}
			if m > maxRepeat {
				return fmt.Errorf("%w: repetition {%s} exceeds %d", ErrGrammar, body, maxRepeat)
			}
			if hasHi && strings.TrimSpace(hi) != "" {
				n, err := strconv.Atoi(strings.TrimSpace(hi))
				if err != nil {
					continue
				}
				if n > maxRepeat {
					return fmt.Errorf("%w: repetition {%s} exceeds %d", ErrGrammar, body, maxRepeat)
				}
				if m > n {
					return fmt.Errorf("%w: repetition {%s} has its minimum above its maximum", ErrGrammar, body)
				}
			}
			i = j
		}
	}
	return nil
}
