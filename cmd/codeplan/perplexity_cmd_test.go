package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func readPPLRows(t *testing.T, p string) []perplexityRow {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var rows []perplexityRow
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r perplexityRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad row %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestPerplexityCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "texts.jsonl")
	var b strings.Builder
	for i := 0; i < 3; i++ {
		text := strings.Repeat(fmt.Sprintf("row %d says hello to the world. ", i), 8+4*i)
		fmt.Fprintf(&b, `{"id":"t%d","text":%q,"prompt":"Say hello %d times.","response":%q}`+"\n", i, text, i, text)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	base := []string{"codeplan", "-q", "perplexity", "tiny", "--input", in, "--threads", "1", "--parallel", "2"}
	score := func(name string, extra ...string) []perplexityRow {
		t.Helper()
		out := filepath.Join(dir, name+".jsonl")
		if code := run(append(append(base, "--output", out), extra...)); code != 0 {
			t.Fatalf("%s: exit %d", name, code)
		}
		return readPPLRows(t, out)
	}
	text := score("text")
	if len(text) != 3 {
		t.Fatalf("%d rows, want 3", len(text))
	}
	for _, r := range text {
		if r.Tokens < 10 || r.LogLik >= 0 || math.Abs(r.Perplexity-math.Exp(-r.LogLik/float64(r.Tokens))) > 1e-6*r.Perplexity {
			t.Errorf("inconsistent row %+v", r)
		}
	}
	// Rows are scored 2 at a time: the same row alone must score the same.
	alone := score("alone", "--parallel", "1", "--limit", "1")
	if math.Abs(alone[0].LogLik-text[0].LogLik) > 1e-2 || alone[0].Tokens != text[0].Tokens {
		t.Errorf("row scored alone %+v, in a group %+v", alone[0], text[0])
	}
	// The response given its prompt scores the text (trimmed, as finetune
	// does) after a chat-formatted context: a different figure, about the
	// same token count.
	pair := score("pair", "--response-field", "response")
	for i := range pair {
		if d := pair[i].Tokens - text[i].Tokens; d < -1 || d > 1 || pair[i].LogLik == text[i].LogLik {
			t.Errorf("row %d: response given prompt %+v, text %+v", i, pair[i], text[i])
		}
	}
	// llama-perplexity's layout: chunks of 32, the second half scored
	// (15 tokens each); rows shorter than a chunk are skipped.
	chunked := score("chunked", "--chunk", "32")
	for _, r := range chunked {
		if r.Chunks == 0 || r.Tokens != r.Chunks*15 {
			t.Errorf("chunked row %+v: want 15 scored tokens per chunk", r)
		}
	}
	// A LoRA adapter changes the model, so the perplexity changes.
	lora := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 8, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	withLoRA := score("lora", "--lora", lora)
	if withLoRA[0].Tokens != text[0].Tokens || math.Abs(withLoRA[0].LogLik-text[0].LogLik) < 1e-3 {
		t.Errorf("adapter changed nothing: %+v vs %+v", withLoRA[0], text[0])
	}
}

func TestPerplexityErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "long.jsonl")
	os.WriteFile(in, []byte(fmt.Sprintf(`{"text":%q}`+"\n", strings.Repeat("many words here ", 400))), 0o644)
	out := filepath.Join(dir, "o.jsonl")
	before, _ := os.ReadFile(in)
	if code := run([]string{"codeplan", "-q", "perplexity", "tiny", "--threads", "1", "--input", in, "--output", in}); code != exitUsage {
		t.Errorf("--output = --input: exit %d, want %d", code, exitUsage)
	}
	if after, _ := os.ReadFile(in); string(after) != string(before) {
		t.Error("--output = --input changed the input")
	}
	base := []string{"codeplan", "-q", "perplexity", "tiny", "--threads", "1", "--output", out}
	for name, args := range map[string][]string{
		"missing input":    {"--input", filepath.Join(dir, "none.jsonl")},
		"no input":         {},
		"longer than ctx":  {"--input", in, "--ctx", "256", "--parallel", "1"},
		"chunk over ctx":   {"--input", in, "--ctx", "256", "--parallel", "1", "--chunk", "1024"},
		"both fields":      {"--input", in, "--text-field", "text", "--response-field", "r"},
		"tiny chunk":       {"--input", in, "--chunk", "2"},
		"missing field":    {"--input", in, "--text-field", "body"},
		"chunk with pairs": {"--input", in, "--response-field", "r", "--chunk", "64"},
	} {
		if code := run(append(base, args...)); code != exitUsage {
			t.Errorf("%s: exit %d, want %d", name, code, exitUsage)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: left %s behind", name, out)
			os.Remove(out)
		}
	}
}
