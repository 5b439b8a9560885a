// Package tokenizer trains a small byte-level BPE vocabulary on a corpus and
// writes it as a Hugging Face tokenizer.json that llama.cpp loads as a
// "llama-bpe" (Llama-3) vocabulary through llama/hfvocab.
//
// Text is split first by Llama-3's pre-tokenizer (Split, a hand-written
// equivalent of its regex, which Go's regexp cannot express: it needs a
// look-ahead), then each piece is spelled in GPT-2's byte-to-character
// alphabet and merged by the learnt merges. Encoding uses "ignore_merges"
// (a piece that is itself a token is taken whole), as Llama-3's
// tokenizer.json and llama.cpp's llama-bpe do, so Go, llama.cpp and the
// Hugging Face implementations give the same ids.
package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pattern is Llama-3's pre-tokenizer regex, written to tokenizer.json; Split
// implements it.
const Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

func isL(r rune) bool  { return unicode.IsLetter(r) }
func isN(r rune) bool  { return unicode.IsNumber(r) }
func isS(r rune) bool  { return unicode.IsSpace(r) }
func isNL(r rune) bool { return r == '\r' || r == '\n' }

// Split cuts text into the pieces Llama-3's pre-tokenizer regex (Pattern)
// finds, trying its alternatives in order at each position as a
// backtracking regex engine does. The pieces concatenate back to text.
func Split(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		n := matchAt(text[i:])
		out = append(out, text[i:i+n])
		i += n
	}
	return out
}

// contractions are the first alternative, matched case-insensitively.
var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// matchAt returns the length of the piece that starts s (s is not empty).
func matchAt(s string) int {
	r, w := utf8.DecodeRuneInString(s)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		for _, c := range contractions {
			if len(s) >= len(c) && strings.EqualFold(s[:len(c)], c) {
				return len(c)
			}
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return w + letters(s[w:])
	}
	if !isNL(r) && !isN(r) {
		if n := letters(s[w:]); n > 0 {
			return w + n
		}
	}
	// \p{N}{1,3}
	if isN(r) {
		n := w
		for k := 1; k < 3 && n < len(s); k++ {
			r2, w2 := utf8.DecodeRuneInString(s[n:])
			if !isN(r2) {
				break
			}
			n += w2
		}
		return n
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	start := 0
	if r == ' ' {
		start = w
	}
	if n := punct(s[start:]); n > 0 {
		n += start
		for n < len(s) && isNL(rune(s[n])) {
			n++
		}
		return n
	}
	// Only whitespace is left: r is a space character.
	end := 0 // end of the whitespace run
	lastNL := -1
	for end < len(s) {
		r2, w2 := utf8.DecodeRuneInString(s[end:])
		if !isS(r2) {
			break
		}
		if isNL(r2) {
			lastNL = end + w2
		}
		end += w2
	}
	// \s*[\r\n]+ : the greedy \s* backs off to the run's last newline.
	if lastNL > 0 {
		return lastNL
	}
	// \s+(?!\S): the whole run at the end of the text, else all but its last
	// character (which then starts the next piece), if that leaves any.
	if end == len(s) {
		return end
	}
	_, lw := utf8.DecodeLastRuneInString(s[:end])
	if end-lw > 0 {
		return end - lw
	}
	// \s+
	return end
}

// letters is the length of the run of letters that starts s.
func letters(s string) int {
	n := 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if !isL(r) {
			break
		}
		n += w
	}
	return n
}

// punct is the length of the run of characters that are neither space,
// letter nor number that starts s.
func punct(s string) int {
	n := 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if isS(r) || isL(r) || isN(r) {
			break
		}
		n += w
	}
	return n
}

// byteRunes maps each byte to the printable character GPT-2's
// bytes_to_unicode assigns it (the alphabet of byte-level BPE tokens).
var byteRunes, runeBytes = func() ([256]rune, map[rune]byte) {
	var m [256]rune
	inv := map[rune]byte{}
	next := rune(256)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
		inv[m[b]] = byte(b)
	}
	return m, inv
}()

// spell writes the bytes of s as byte-level characters.
func spell(s string) []string {
	out := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = string(byteRunes[s[i]])
	}
	return out
}

// unspell turns a token's byte-level characters back into bytes; ok is
// false for a character that stands for no byte.
func unspell(tok string) ([]byte, bool) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeBytes[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}
