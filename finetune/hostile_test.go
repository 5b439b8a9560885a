package finetune

import (
	"context"
	"encoding/json"
	"errors"
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

// TestValidateConfigErrors: every setting Validate refuses comes back as a
// *ConfigError naming its Config field, in the library's words (no
// command-line flag). NaN and infinities are among them (issue 9 item 2:
// --max-grad-norm NaN was accepted).
func TestValidateConfigErrors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tt := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Data", func(c *Config) { c.Data = "" }},
		{"Out", func(c *Config) { c.Out = "" }},
		{"Merge", func(c *Config) { c.Full, c.Merge = true, "m.gguf" }},
		{"Rank", func(c *Config) { c.Rank = -1 }},
		{"Rank", func(c *Config) { c.Rank = 5000 }},
		{"Alpha", func(c *Config) { c.Alpha = -1 }},
		{"Alpha", func(c *Config) { c.Alpha = inf }},
		{"Epochs", func(c *Config) { c.Epochs = -2 }},
		{"LR", func(c *Config) { c.LR = nan }},
		{"LR", func(c *Config) { c.LR = 2 }},
		{"Warmup", func(c *Config) { c.Warmup = inf }},
		{"Warmup", func(c *Config) { c.Warmup = -0.5 }},
		{"Ctx", func(c *Config) { c.Ctx = 4 }},
		{"Batch", func(c *Config) { c.Ctx, c.Batch = 512, 256 }},
		{"GradAccum", func(c *Config) { c.GradAccum = -1 }},
		{"ValSplit", func(c *Config) { c.ValSplit = 1 }},
		{"ValSplit", func(c *Config) { c.ValSplit = nan }},
		{"MaxGradNorm", func(c *Config) { c.MaxGradNorm = nan }},
		{"MaxGradNorm", func(c *Config) { c.MaxGradNorm = inf }},
		{"WeightDecay", func(c *Config) { c.WeightDecay = nan }},
		{"WeightDecay", func(c *Config) { c.WeightDecay = 2 }},
		{"CheckpointEvery", func(c *Config) { c.CheckpointEvery = -1 }},
		{"EvalEvery", func(c *Config) { c.EvalEvery = -1 }},
		{"Snapshots", func(c *Config) { c.Full, c.Snapshots = true, -1 }},
		{"Snapshots", func(c *Config) { c.Snapshots = 4 }}, // a LoRA run has no whole model to snapshot
		{"Mode", func(c *Config) { c.Mode = "essay" }},
		{"Format", func(c *Config) { c.Format = "chat" }},
		{"Schedule", func(c *Config) { c.Schedule = "step" }},
		{"Targets", func(c *Config) { c.Targets = []string{"attn_q", "lm_head"} }},
	} {
		c := Config{Data: "d.jsonl", Out: "a.gguf"}.withDefaults()
		tt.edit(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v is not a *ConfigError", tt.field, err)
			continue
		}
		if ce.Field != tt.field || ce.Want == "" {
			t.Errorf("want field %s, got %+v", tt.field, ce)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, tt.field+" ") || strings.Contains(msg, "--") {
			t.Errorf("%s: message %q", tt.field, msg)
		}
		if msg := ce.Message("--flag"); !strings.HasPrefix(msg, "--flag ") || !strings.Contains(msg, ce.Want) {
			t.Errorf("%s: message under another name %q", tt.field, msg)
		}
	}
	if err := (Config{Data: "d.jsonl", Out: "a.gguf"}.withDefaults()).Validate(); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
}

// TestPreflightErrors: the file checks name the Config field at fault, and
// a checkpoint left by an earlier run stops a fresh start
// (ErrCheckpointExists) in Preflight as in Run.
func TestPreflightErrors(t *testing.T) {
	base, err := InspectBase(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		field, want string
		edit        func(*Config)
	}{
		{"Data", "no such file", func(c *Config) { c.Data = filepath.Join(dir, "nope.jsonl") }},
		{"Data", "is a directory", func(c *Config) { c.Data = dir }},
		{"Out", "is the model being trained", func(c *Config) { c.Out = tinyPath }},
		{"Out", "does not exist", func(c *Config) { c.Out = filepath.Join(dir, "no", "a.gguf") }},
		{"Out", "is a directory", func(c *Config) { c.Out = dir }},
		{"Merge", "is the base model itself", func(c *Config) { c.Merge = tinyPath }},
	} {
		cfg := quickConfig(t, dir)
		tt.edit(&cfg)
		err := Preflight(cfg, base)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "--") {
			t.Errorf("%s (%s): %v", tt.field, tt.want, err)
		}
	}
	cfg := quickConfig(t, dir)
	if err := os.WriteFile(cfg.CheckpointPath(), []byte("left over"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Preflight(cfg, base); !errors.Is(err, ErrCheckpointExists) || !strings.Contains(err.Error(), cfg.CheckpointPath()) {
		t.Errorf("checkpoint of an earlier run: %v", err)
	}
	if _, err := Run(context.Background(), loadModel(t, tinyPath), cfg); !errors.Is(err, ErrCheckpointExists) {
		t.Errorf("Run over the checkpoint of an earlier run: %v", err)
	}
}
