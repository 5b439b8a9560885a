package llama_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// TestTokenizeLongRuns reproduces issue 9 item 1: a run of one character
// (the tiny model's Qwen2 pre-tokenizer matches it with std::regex, which
// recurses once per character) used to overflow the cgo thread's 8 MB stack
// at about 32,000 characters and kill the process with SIGSEGV. Every run up
// to MaxTokenizeBytes must now tokenize, one token per byte in this
// vocabulary.
func TestTokenizeLongRuns(t *testing.T) {
	m := loadTiny(t)
	cases := []struct {
		ch string
		n  int
	}{
		{"A", 40_000},
		{" ", 400_000},
		{"=", 40_000},
		{"A", 1_000_000},
	}
	for _, c := range cases {
		if testing.Short() && c.n > 100_000 {
			continue // seconds of std::regex each; the 40,000 cases already crashed before the fix
		}
		start := time.Now()
		toks, err := m.Tokenize(strings.Repeat(c.ch, c.n), false, false)
		if err != nil {
			t.Fatalf("%d x %q: %v", c.n, c.ch, err)
		}
		if len(toks) != c.n {
			t.Fatalf("%d x %q: %d tokens, want one per byte", c.n, c.ch, len(toks))
		}
		for i, tok := range toks {
			if tok != llama.Token(c.ch[0]) {
				t.Fatalf("%d x %q: token %d is %d, want %d", c.n, c.ch, i, tok, c.ch[0])
			}
		}
		t.Logf("%d x %q: %v", c.n, c.ch, time.Since(start))
	}
}

// TestTokenizeTooLong: past MaxTokenizeBytes the answer is ErrTextTooLong,
// at once, whatever the text.
func TestTokenizeTooLong(t *testing.T) {
	m := loadTiny(t)
	_, err := m.Tokenize(strings.Repeat("A", llama.MaxTokenizeBytes+1), false, false)
	if !errors.Is(err, llama.ErrTextTooLong) {
		t.Fatalf("err = %v, want ErrTextTooLong", err)
	}
	if !strings.Contains(err.Error(), "1048577 bytes") {
		t.Errorf("error %q does not give the length", err)
	}
}

// TestTokenizeIDsUnchanged pins the ids of ordinary text, special tokens
// included, so that moving tokenization onto its own thread cannot change
// what the model sees.
func TestTokenizeIDsUnchanged(t *testing.T) {
	m := loadTiny(t)
	text := "Hi, <|im_end|>\nnaïve = 42"
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []llama.Token
	for _, b := range []byte("Hi, ") {
		want = append(want, llama.Token(b))
	}
	want = append(want, tiny.TokenIMEnd)
	for _, b := range []byte("\nnaïve = 42") {
		want = append(want, llama.Token(b))
	}
	if len(toks) != len(want) {
		t.Fatalf("tokens %v, want %v", toks, want)
	}
	for i := range want {
		if toks[i] != want[i] {
			t.Fatalf("token %d = %d, want %d (all: %v)", i, toks[i], want[i], toks)
		}
	}
	// Without parseSpecial the marker is plain bytes.
	plain, err := m.Tokenize("<|im_end|>", false, false)
	if err != nil || len(plain) != len("<|im_end|>") {
		t.Fatalf("plain marker: %v %v", plain, err)
	}
}

// TestMaxTextBytes: the cheap bound must never refuse a text that fits. In
// the tiny vocabulary the longest piece is "<|endoftext|>" (13 bytes).
func TestMaxTextBytes(t *testing.T) {
	m := loadTiny(t)
	if got := m.MaxTextBytes(100); got != 1300 {
		t.Errorf("MaxTextBytes(100) = %d, want 1300", got)
	}
	if got := m.MaxTextBytes(1 << 30); got != llama.MaxTokenizeBytes {
		t.Errorf("MaxTextBytes(huge) = %d, want the tokenizer's limit", got)
	}
	for _, text := range []string{"<|endoftext|><|endoftext|>", "plain words", strings.Repeat("<|im_start|>", 50)} {
		toks, err := m.Tokenize(text, false, true)
		if err != nil {
			t.Fatal(err)
		}
		if m.MaxTextBytes(len(toks)) < len(text) {
			t.Errorf("%q: %d tokens, but MaxTextBytes says at most %d bytes fit", text, len(toks), m.MaxTextBytes(len(toks)))
		}
	}
}
