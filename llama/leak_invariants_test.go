//go:build invariants

package llama_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
)

// In builds with -tags invariants, a Batch or Sampler collected without
// Close is reported by llama.Leaks (and fails the test binary through
// testmodel.CheckLeaks).
func TestLeaksAreReported(t *testing.T) {
	llama.Leaks() // start clean
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		if _, err := llama.NewBatch(8, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := llama.NewSampler(m, llama.SamplerOptions{}); err != nil {
			t.Fatal(err)
		}
		closed, err := llama.NewBatch(8, 1)
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
	}()
	var leaks []string
	for i := 0; i < 20 && len(leaks) < 2; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		leaks = append(leaks, llama.Leaks()...)
	}
	joined := strings.Join(leaks, "\n")
	if len(leaks) != 2 || !strings.Contains(joined, "Batch created at") || !strings.Contains(joined, "Sampler created at") ||
		!strings.Contains(joined, "leak_invariants_test.go") {
		t.Fatalf("leaks reported:\n%s\nwant the unclosed Batch and Sampler, with where they were made", joined)
	}
	// The leaked sampler still counts: the model cannot be freed under it.
	if err := m.Close(); !errors.Is(err, llama.ErrInUse) {
		t.Errorf("close under a leaked sampler: %v", err)
	}
}
