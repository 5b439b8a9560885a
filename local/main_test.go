package local

import (
	"os"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/testmodel"
)

// TestMain fails the run, in -tags invariants builds, when a test lets a
// Context, Sampler or Batch be collected unclosed: one Close must free all.
func TestMain(m *testing.M) { os.Exit(testmodel.CheckLeaks(m.Run())) }
