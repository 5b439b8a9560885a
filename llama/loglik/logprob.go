// Package loglik scores text under a model without sampling: the
// log-probability of each continuation token given a context, computed by
// prompt processing only. Perplexity, a plan's information gain,
// multiple-choice scoring by log-likelihood and the server's logprobs are all
// built on it.
//
// Log-softmax is computed in float64 from llama.cpp's float32 logits, so
// sums over thousands of tokens do not lose precision.
package loglik

import (
	"math"
	"sort"
)

// LogSoftmax returns log P(tok) under the distribution softmax(logits), in
// natural-log units (nats).
func LogSoftmax(logits []float32, tok int) float64 {
	return float64(logits[tok]) - logSumExp(logits)
}

// logSumExp is log(sum(exp(l))) computed stably (shifted by the maximum).
func logSumExp(logits []float32) float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = math.Max(m, float64(l))
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, l := range logits {
		s += math.Exp(float64(l) - m)
	}
	return m + math.Log(s)
}

// Argmax is the index of the largest logit (the lowest index on ties, as
// greedy sampling picks it).
func Argmax(logits []float32) int {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return best
}

// TokenProb is one token with its log-probability.
type TokenProb struct {
	Token   int
	LogProb float64
}

// Distribution is the log-softmax of one position's logits, kept as the
// normaliser so that any token's log-probability is one subtraction.
type Distribution struct {
	logits []float32
	lse    float64
}

// NewDistribution normalises logits (the slice is kept, not copied: it must
// not change while the Distribution is used).
func NewDistribution(logits []float32) Distribution {
	return Distribution{logits: logits, lse: logSumExp(logits)}
}

// LogProb is log P(tok).
func (d Distribution) LogProb(tok int) float64 { return float64(d.logits[tok]) - d.lse }

// Top returns the k most probable tokens, most probable first (ties by
// token id). k is capped at the vocabulary size.
func (d Distribution) Top(k int) []TokenProb {
	if k <= 0 {
		return nil
	}
	k = min(k, len(d.logits))
	// A bounded insertion list: k is small (OpenAI allows up to 20).
	top := make([]TokenProb, 0, k+1)
	for i, l := range d.logits {
		if len(top) == k && l <= float32(top[k-1].LogProb) {
			continue
		}
		j := sort.Search(len(top), func(j int) bool { return float32(top[j].LogProb) < l })
		top = append(top, TokenProb{})
		copy(top[j+1:], top[j:])
		top[j] = TokenProb{Token: i, LogProb: float64(l)}
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].LogProb -= d.lse
	}
	return top
}
