package loglik_test

import (
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/loglik"
)

// BenchmarkScore measures scored tokens per second on the tiny model: 8
// requests of about 250 tokens, one per sequence or all through one.
func BenchmarkScore(b *testing.B) {
	for _, seqs := range []int{1, 8} {
		b.Run(map[int]string{1: "seq1", 8: "seq8"}[seqs], func(b *testing.B) {
			ctx, err := model.NewContext(llama.ContextOptions{ContextSize: seqs * 512, Sequences: seqs, BatchSize: 512, Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer ctx.Close()
			s, err := loglik.NewScorer(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			toks, err := model.Tokenize(strings.Repeat("score these words please ", 10), false, false)
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]loglik.Request, 8)
			n := 0
			for i := range reqs {
				reqs[i] = loglik.Request{Context: toks[:1+i], Continuation: toks[1+i:]}
				n += len(toks) - 1
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Score(reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
