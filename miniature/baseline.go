package miniature

import (
	"math"
	"strconv"
	"strings"
)

// Baseline is the held-out loss of a prompt-blind model: it sees only the
// response tokens before the one it predicts, never the prompt. A trained
// arm whose response loss is not well below it has not learnt to read the
// prompt.
type Baseline struct {
	Order        int     `json:"order"`
	Tokens       int     `json:"tokens"`
	NatsPerToken float64 `json:"nats_per_token"`
}

// ngram is a Witten-Bell interpolated n-gram model over token ids: no
// parameter is tuned, so nothing is fitted on the held-out items.
type ngram struct {
	order int
	vocab int
	count map[string]int // context+token -> count
	ctx   map[string]int // context -> count
	types map[string]int // context -> distinct next tokens
}

func key(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.Itoa(id))
		b.WriteByte(',')
	}
	return b.String()
}

// newNgram counts every sequence (each starting with the context empty).
func newNgram(seqs [][]int, order, vocab int) *ngram {
	m := &ngram{order: order, vocab: vocab, count: map[string]int{}, ctx: map[string]int{}, types: map[string]int{}}
	for _, s := range seqs {
		for i := range s {
			for n := 0; n < order && n <= i; n++ {
				h := key(s[i-n : i])
				k := h + "|" + strconv.Itoa(s[i])
				if m.count[k] == 0 {
					m.types[h]++
				}
				m.count[k]++
				m.ctx[h]++
			}
		}
	}
	return m
}

// prob is P(tok | the up to order-1 tokens before it in hist).
func (m *ngram) prob(hist []int, tok int) float64 {
	p := 1 / float64(m.vocab)
	for n := 0; n < m.order && n <= len(hist); n++ {
		h := key(hist[len(hist)-n:])
		c := m.ctx[h]
		if c == 0 {
			break
		}
		t := float64(m.types[h])
		p = (float64(m.count[h+"|"+strconv.Itoa(tok)]) + t*p) / (float64(c) + t)
	}
	return p
}

// PromptBlind trains an order-n model on train and returns its loss on
// held (nats per token).
func PromptBlind(train, held [][]int, order, vocab int) Baseline {
	m := newNgram(train, order, vocab)
	b := Baseline{Order: order}
	total := 0.0
	for _, s := range held {
		for i, tok := range s {
			total -= math.Log(m.prob(s[:i], tok))
			b.Tokens++
		}
	}
	if b.Tokens > 0 {
		b.NatsPerToken = total / float64(b.Tokens)
	}
	return b
}
