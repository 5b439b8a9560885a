package tokenizer

import (
	"fmt"
	"sort"
	"strings"
)

// Specials are the chat markers every trained vocabulary carries as
// special (control) tokens, at ids 256, 257 and 258 as in the byte-level
// vocabulary of 'codeplan model init': <|endoftext|> (BOS and padding),
// <|im_start|> and <|im_end|> (ChatML; the end of generation).
var Specials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// Tokenizer is a trained byte-level BPE vocabulary: ids 0–255 are the
// bytes, then the special tokens, then one token per merge in merge order.
type Tokenizer struct {
	// Tokens are the token texts in id order, in the byte-level alphabet
	// (a space is "Ġ"); special tokens are their plain text.
	Tokens []string
	// Merges are the merge pairs in rank order.
	Merges [][2]string
	ids    map[string]int
	ranks  map[[2]string]int
}

// Options are the settings of Train.
type Options struct {
	// VocabSize is the total number of tokens (bytes, specials and merges).
	VocabSize int
	// Required are pieces that must each become one token (for example a
	// name with its leading space, " Ann"). Each must be one piece of Split.
	// Their merges are taken out of the budget of frequency-chosen merges.
	Required []string
}

// MinVocab is the smallest vocabulary: the bytes and the specials.
var MinVocab = 256 + len(Specials)

// Train learns BPE merges from texts: each text is split by Split, and the
// most frequent adjacent pair of tokens, counted over all pieces, is merged
// until the vocabulary has opts.VocabSize tokens, or until every piece is
// one token (a small corpus gives a smaller vocabulary). Ties go to the
// pair whose texts sort first, so training is deterministic. Merges that make the
// required pieces single tokens are added last; the frequency-chosen merges
// are cut back until both fit.
func Train(texts []string, opts Options) (*Tokenizer, error) {
	if opts.VocabSize < MinVocab {
		return nil, fmt.Errorf("tokenizer: a vocabulary of %d tokens is too small (at least %d: the 256 bytes and %d special tokens)",
			opts.VocabSize, MinVocab, len(Specials))
	}
	for _, r := range opts.Required {
		if p := Split(r); len(p) != 1 {
			return nil, fmt.Errorf("tokenizer: required token %q is not one pre-token piece (it splits into %q)", r, p)
		}
	}
	counts := map[string]int{}
	for _, t := range texts {
		for _, p := range splitSpecial(t) {
			if p.special {
				continue
			}
			for _, piece := range Split(p.text) {
				counts[piece]++
			}
		}
	}
	total := opts.VocabSize - MinVocab
	// Greedy learning makes a shorter run a prefix of a longer one, so the
	// budget is cut back on one list until the required merges fit.
	all := learn(counts, total)
	for n := len(all); ; {
		extra := build(all[:n]).require(opts.Required)
		over := n + len(extra) - total
		if over <= 0 {
			return build(append(all[:n:n], extra...)), nil
		}
		if n == 0 {
			return nil, fmt.Errorf("tokenizer: the %d required tokens need %d merges, more than a vocabulary of %d allows",
				len(opts.Required), len(extra), opts.VocabSize)
		}
		n = max(0, n-over)
	}
}

// word is a unique piece during training: its tokens and its count.
type word struct {
	toks  []string
	count int
}

// learn returns up to n merges, most frequent pair first.
func learn(counts map[string]int, n int) [][2]string {
	pieces := make([]string, 0, len(counts))
	for p := range counts {
		pieces = append(pieces, p)
	}
	sort.Strings(pieces)
	words := make([]word, len(pieces))
	for i, p := range pieces {
		words[i] = word{toks: spell(p), count: counts[p]}
	}
	var merges [][2]string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.toks); i++ {
				pairs[[2]string{w.toks[i], w.toks[i+1]}] += w.count
			}
		}
		var best [2]string
		bestN := 0
		for p, c := range pairs {
			if c > bestN || (c == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, c
			}
		}
		if bestN == 0 {
			break
		}
		merges = append(merges, best)
		for i := range words {
			words[i].toks = mergePair(words[i].toks, best)
		}
	}
	return merges
}

// mergePair joins every occurrence of pair in toks, left to right.
func mergePair(toks []string, pair [2]string) []string {
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		if i+1 < len(toks) && toks[i] == pair[0] && toks[i+1] == pair[1] {
			out = append(out, pair[0]+pair[1])
			i++
			continue
		}
		out = append(out, toks[i])
	}
	return out
}

// build makes the tokenizer of a merge list.
func build(merges [][2]string) *Tokenizer {
	t := &Tokenizer{ids: map[string]int{}, ranks: map[[2]string]int{}}
	add := func(s string) {
		if _, ok := t.ids[s]; !ok {
			t.ids[s] = len(t.Tokens)
			t.Tokens = append(t.Tokens, s)
		}
	}
	for b := 0; b < 256; b++ {
		add(string(byteRunes[b]))
	}
	for _, s := range Specials {
		add(s)
	}
	for _, m := range merges {
		if _, ok := t.ranks[m]; ok {
			continue
		}
		t.ranks[m] = len(t.Merges)
		t.Merges = append(t.Merges, m)
		add(m[0] + m[1])
	}
	return t
}

// require returns the merges, in order, that make every required piece one
// token when appended to t's merges: for each piece, its tokens under t are
// joined left to right.
func (t *Tokenizer) require(pieces []string) [][2]string {
	var extra [][2]string
	have := map[string]bool{}
	for _, tok := range t.Tokens {
		have[tok] = true
	}
	seen := map[[2]string]bool{}
	for _, p := range pieces {
		toks := t.bpe(strings.Join(spell(p), ""))
		for len(toks) > 1 {
			m := [2]string{toks[0], toks[1]}
			if !have[m[0]+m[1]] && !seen[m] {
				seen[m] = true
				have[m[0]+m[1]] = true
				extra = append(extra, m)
			}
			toks = append([]string{m[0] + m[1]}, toks[2:]...)
		}
	}
	return extra
}

// bpe merges a spelled piece by rank and returns its tokens.
func (t *Tokenizer) bpe(spelled string) []string {
	var toks []string
	for _, r := range spelled {
		toks = append(toks, string(r))
	}
	for len(toks) > 1 {
		best, bestRank := -1, len(t.Merges)
		for i := 0; i+1 < len(toks); i++ {
			if r, ok := t.ranks[[2]string{toks[i], toks[i+1]}]; ok && r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		toks = mergePair(toks, t.Merges[bestRank])
	}
	return toks
}

// Len is the number of tokens.
func (t *Tokenizer) Len() int { return len(t.Tokens) }

// ID returns the id of a token text (byte-level alphabet); ok is false
// when it is not a token.
func (t *Tokenizer) ID(tok string) (int, bool) {
	id, ok := t.ids[tok]
	return id, ok
}

// Encode returns the token ids of text. Special-token texts become their
// special tokens; the rest is split by Split, and a piece that is a token
// is taken whole (ignore_merges), else merged by rank.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for _, p := range splitSpecial(text) {
		if p.special {
			ids = append(ids, t.ids[p.text])
			continue
		}
		for _, piece := range Split(p.text) {
			spelled := strings.Join(spell(piece), "")
			if id, ok := t.ids[spelled]; ok && !isSpecial(spelled) {
				ids = append(ids, id)
				continue
			}
			for _, tok := range t.bpe(spelled) {
				ids = append(ids, t.ids[tok])
			}
		}
	}
	return ids
}

// Decode returns the text of ids; unknown ids are an error.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	var b strings.Builder
	for _, id := range ids {
		if id < 0 || id >= len(t.Tokens) {
			return "", fmt.Errorf("tokenizer: id %d out of range (vocabulary of %d)", id, len(t.Tokens))
		}
		tok := t.Tokens[id]
		if isSpecial(tok) {
			b.WriteString(tok)
			continue
		}
		raw, ok := unspell(tok)
		if !ok {
			return "", fmt.Errorf("tokenizer: token %d %q is not byte-level text", id, tok)
		}
		b.Write(raw)
	}
	return b.String(), nil
}

func isSpecial(s string) bool {
	for _, sp := range Specials {
		if s == sp {
			return true
		}
	}
	return false
}

// part is a stretch of text: a special token or ordinary text.
type part struct {
	text    string
	special bool
}

// splitSpecial cuts the special-token texts out of text, as Hugging Face
// tokenizers do with added tokens before pre-tokenizing.
func splitSpecial(text string) []part {
	var out []part
	for text != "" {
		at, which := -1, ""
		for _, sp := range Specials {
			if i := strings.Index(text, sp); i >= 0 && (at < 0 || i < at) {
				at, which = i, sp
			}
		}
		if at < 0 {
			out = append(out, part{text: text})
			break
		}
		if at > 0 {
			out = append(out, part{text: text[:at]})
		}
		out = append(out, part{text: which, special: true})
		text = text[at+len(which):]
	}
	return out
}
