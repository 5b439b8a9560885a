package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama/engine"
)

// BenchmarkEngine measures end-to-end generation throughput of the
// continuous-batching engine on the tiny model: 32 requests of 64 generated
// tokens each, at parallel 1 and 8.
func BenchmarkEngine(b *testing.B) {
	for _, parallel := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			e := newEngine(b, parallel, parallel*512, engine.Options{QueueSize: 64})
			var tokens int
			var elapsed time.Duration
			for it := 0; it < b.N; it++ {
				start := time.Now()
				var chans []<-chan engine.Result
				for r := 0; r < 32; r++ {
					ch, err := e.SubmitWait(context.Background(), engine.Request{Phases: []engine.Phase{{Prefix: fmt.Sprintf("request %d: plan", r), MaxTokens: 64}}})
					if err != nil {
						b.Fatal(err)
					}
					chans = append(chans, ch)
				}
				for _, ch := range chans {
					tokens += (<-ch).GeneratedTokens()
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tok/s")
		})
	}
}

func TestMeasureBatched(t *testing.T) {
	lctx := engineContext(t, 4, 4*256)
	r, err := engine.MeasureBatched(lctx, 4, 64, 16)
	if err != nil {
		t.Fatal(err)
	}
	if r.PromptTokensPerSecond() <= 0 || r.GenTokensPerSecond() <= 0 {
		t.Errorf("rates %+v", r)
	}
	if _, err := engine.MeasureBatched(lctx, 8, 64, 16); err == nil {
		t.Error("more sequences than the context holds accepted")
	}
	if _, err := engine.MeasureBatched(lctx, 4, 600, 16); err == nil {
		t.Error("more tokens than the context holds accepted")
	}
}
