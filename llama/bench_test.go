package llama_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
)

// BenchmarkDecode measures generation throughput on the tiny model with 1
// and 8 sequences decoded together: each step carries one token per
// sequence, so the 8-sequence run shows what batching buys.
func BenchmarkDecode(b *testing.B) {
	for _, seqs := range []int{1, 8} {
		b.Run(fmt.Sprintf("seqs=%d", seqs), func(b *testing.B) {
			m := loadTiny(b)
			ctx := newCtx(b, m, llama.ContextOptions{ContextSize: 4096, Sequences: seqs})
			batch, _ := llama.NewBatch(512, 1)
			defer batch.Close()
			const steps = 128
			tokens := 0
			var elapsed time.Duration
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				ctx.ClearKV()
				start := time.Now()
				for step := 0; step < steps; step++ {
					batch.Clear()
					for s := 0; s < seqs; s++ {
						batch.Add(llama.Token(32+(step*7+s)%90), llama.Pos(step), llama.SeqID(s), true)
					}
					if err := ctx.Decode(batch); err != nil {
						b.Fatal(err)
					}
					tokens += seqs
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tok/s")
		})
	}
}

// BenchmarkTokenize measures Tokenize on an ordinary 1 KiB prompt and on a
// 40,000-character run (the input that used to crash). Each call runs on a
// thread of its own (see Tokenize), so the short case shows that cost.
func BenchmarkTokenize(b *testing.B) {
	m := loadTiny(b)
	for _, c := range []struct{ name, text string }{
		{"word", "hello"},
		{"prompt-1KiB", strings.Repeat("Plan the steps, then answer: 12 + 30 = 42. ", 24)},
		{"run-40000", strings.Repeat("A", 40_000)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for i := 0; i < b.N; i++ {
				if _, err := m.Tokenize(c.text, true, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
