package llama_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
)

// openModel loads the tiny model for a test that closes it itself.
func openModel(t *testing.T) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A grammar sampler keeps the model's vocabulary: closing the model under
// it used to return nil, and the next Accept read freed memory (it hung or
// crashed). The model now counts its samplers.
func TestGrammarSamplerKeepsModelOpen(t *testing.T) {
	m := openModel(t)
	s, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: `root ::= "a"+`})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Close()
	if !errors.Is(err, llama.ErrInUse) || !strings.Contains(err.Error(), "1 samplers") {
		t.Fatalf("closing a model under a grammar sampler: %v, want ErrInUse naming 1 samplers", err)
	}
	a, err := m.Tokenize("a", false, false)
	if err != nil || len(a) != 1 {
		t.Fatalf("tokenize a: %v, %v", a, err)
	}
	if err := s.Accept(a[0]); err != nil {
		t.Fatalf("accept after the refused close: %v", err)
	}
	s.Close()
	if err := m.Close(); err != nil {
		t.Fatalf("close after the sampler: %v", err)
	}
	if err := s.Accept(a[0]); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("accept on a closed sampler: %v", err)
	}
}

// Every method of a closed model returns ErrClosed (or its zero value when
// it has no error result); none reads the freed vocabulary. BOS used to
// dereference NULL.
func TestModelUseAfterClose(t *testing.T) {
	m := openModel(t)
	plain, err := llama.NewSampler(m, llama.SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); !errors.Is(err, llama.ErrInUse) {
		t.Errorf("closing a model under a plain sampler: %v", err)
	}
	plain.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	for name, call := range map[string]func() error{
		"BOS":    func() error { _, err := m.BOS(); return err },
		"EOS":    func() error { _, err := m.EOS(); return err },
		"EOT":    func() error { _, err := m.EOT(); return err },
		"AddBOS": func() error { _, err := m.AddBOS(); return err },
		"Tokenize": func() error {
			_, err := m.Tokenize("x", true, false)
			return err
		},
		"TokenPiece": func() error { _, err := m.TokenPiece(65, false); return err },
		"Detokenize": func() error { _, err := m.Detokenize([]llama.Token{65}, false, false); return err },
		"Info":       func() error { _, err := m.Info(); return err },
		"ApplyTemplate": func() error {
			_, err := m.ApplyTemplate([]llama.ChatMessage{{Role: "user", Content: "x"}}, true)
			return err
		},
		"NewContext":  func() error { _, err := m.NewContext(llama.ContextOptions{ContextSize: 64}); return err },
		"NewSampler":  func() error { _, err := llama.NewSampler(m, llama.SamplerOptions{}); return err },
		"LoadAdapter": func() error { _, err := m.LoadAdapter(tinyPath); return err },
		"NewFullTrainer": func() error {
			_, err := m.NewFullTrainer(llama.TrainerOptions{MaxTokens: 8})
			return err
		},
	} {
		if err := call(); !errors.Is(err, llama.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if m.VocabSize() != 0 || m.IsEOG(0) || m.ContextLength() != 0 || m.Layers() != 0 || m.MaxTextBytes(10) != 0 {
		t.Error("a closed model reports a vocabulary or a shape")
	}
	if _, ok := m.Meta("general.architecture"); ok {
		t.Error("a closed model has metadata")
	}
}

// Close waits for the calls in progress and every later call gets
// ErrClosed: no call reads the vocabulary while it is being freed.
func TestCloseWaitsForCallsInProgress(t *testing.T) {
	m := openModel(t)
	text := strings.Repeat("the quick brown fox jumps over the lazy dog ", 2000)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	running := make(chan struct{})
	var once sync.Once
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				once.Do(func() { close(running) })
				toks, err := m.Tokenize(text, true, false)
				switch {
				case errors.Is(err, llama.ErrClosed):
					return
				case err != nil:
					errs <- err
					return
				case len(toks) < 1000:
					errs <- errors.New("short tokenization")
					return
				}
				if _, err := m.BOS(); err != nil && !errors.Is(err, llama.ErrClosed) {
					errs <- err
					return
				}
			}
		}()
	}
	<-running // Close now races calls in progress
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
