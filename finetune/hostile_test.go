package finetune

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
)

// TestLoadExamplesLongRuns reproduces issue 9 item 1 for finetune: a row
// whose prompt is a run of 40,000 'A's segfaulted in the tokenizer. Now
// such rows are skipped as too long (one past the tokenizer's limit too),
// and the normal row is still used.
func TestLoadExamplesLongRuns(t *testing.T) {
	m := loadModel(t, tinyPath)
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	var lines []string
	for i, prompt := range []string{"What is 2+2?", strings.Repeat("A", 40_000), strings.Repeat("=", llama.MaxTokenizeBytes+10)} {
		b, err := json.Marshal(map[string]string{"id": string(rune('a' + i)), "prompt": prompt, "plan": "x = 2 + 2", "response": "4"})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}}
	ex, st, err := LoadExamples(path, DataOptions{Prompter: p, Tokenizer: m, Ctx: 128, Warn: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 1 || ex[0].ID != "a" || st.SkipReasons["prompt too long"] != 2 {
		t.Fatalf("%d examples, stats %+v", len(ex), st)
	}
}

// TestValidateNonFinite: NaN and infinities in the float settings are
// refused by name (issue 9 item 2: --max-grad-norm NaN was accepted).
func TestValidateNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tt := range []struct {
		flag string
		edit func(*Config)
	}{
		{"--max-grad-norm", func(c *Config) { c.MaxGradNorm = nan }},
		{"--max-grad-norm", func(c *Config) { c.MaxGradNorm = inf }},
		{"--weight-decay", func(c *Config) { c.WeightDecay = nan }},
		{"--warmup", func(c *Config) { c.Warmup = inf }},
		{"--lr", func(c *Config) { c.LR = nan }},
		{"--lora-alpha", func(c *Config) { c.Alpha = inf }},
	} {
		c := Config{Data: "d.jsonl", Out: "a.gguf"}.withDefaults()
		tt.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%s: err = %v", tt.flag, err)
		}
	}
}
