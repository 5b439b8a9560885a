// Package testmodel gives tests the tiny random-weight model (llama/tiny),
// so that every package's tests load it the same way.
package testmodel

import (
	"fmt"
	"os"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// Path writes the tiny model if needed and returns its path.
func Path(t testing.TB) string {
	t.Helper()
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Load loads the tiny model for one test and closes it when the test ends.
func Load(t testing.TB) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(Path(t), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// Main is a TestMain body: it loads the tiny model into *model, runs the
// tests, closes the model and exits with the tests' status.
func Main(m *testing.M, model **llama.Model) {
	p, err := tiny.DefaultPath()
	if err == nil {
		*model, err = llama.LoadModel(p, llama.ModelOptions{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiny model:", err)
		os.Exit(1)
	}
	code := m.Run()
	(*model).Close()
	os.Exit(code)
}
