package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// TestFinetuneCLI trains a small adapter on the tiny model through the
// command, then uses it with generate; bad inputs get exit code 2.
func TestFinetuneCLI(t *testing.T) {
	dir := t.TempDir()
	rows := copyTrainingRows(t, dir)
	out := filepath.Join(dir, "adapter.gguf")
	args := []string{"codeplan", "-q", "finetune", "tiny", "--data", rows, "--out", out, "--epochs", "1",
		"--lr", "1e-3", "--lora-rank", "4", "--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0"}
	if code := run(args); code != 0 {
		t.Fatalf("finetune exit %d", code)
	}
	for _, p := range []string{out, out[:len(out)-len(".gguf")] + ".log.csv", out[:len(out)-len(".gguf")] + ".loss.png"} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("missing output %s: %v", filepath.Base(p), err)
		}
	}
	csv, _ := os.ReadFile(out[:len(out)-len(".gguf")] + ".log.csv")
	if lines := strings.Count(string(csv), "\n"); lines < 2 {
		t.Errorf("step log has %d lines", lines)
	}
	prompts := filepath.Join(dir, "p.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt":"What is 2+2?"}`+"\n"), 0o644)
	if code := run([]string{"codeplan", "-q", "generate", "tiny", "--lora", out, "--input", prompts, "--output", filepath.Join(dir, "a.jsonl"),
		"--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}); code != 0 {
		t.Errorf("generate with the trained adapter: exit %d", code)
	}
	// resuming the finished run: nothing to resume, said in flags
	if code, msg := runHostileChild(t, dir, "", nil, append(args[2:], "--resume")...); code != exitUsage ||
		!strings.Contains(msg, "--resume: the run has already finished") || !strings.Contains(msg, "delete "+out) || !strings.Contains(msg, "another --out") || crashTrace(msg) {
		t.Errorf("resuming a finished run: exit %d:\n%s", code, msg)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	if code := run(append(args[:4:4], "--data", empty, "--out", filepath.Join(dir, "x.gguf"))); code != exitUsage {
		t.Errorf("no usable rows: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"codeplan", "finetune", "tiny", "--out", filepath.Join(dir, "y.gguf")}); code != exitUsage {
		t.Errorf("missing --data: exit %d", code)
	}
}

// TestFinetuneFullCLI trains every weight of a model from `model init`
// through the command; the written model generates; options that only
// apply to LoRA, and non-F32 models, are usage errors.
func TestFinetuneFullCLI(t *testing.T) {
	dir := t.TempDir()
	rows := copyTrainingRows(t, dir)
	init := filepath.Join(dir, "init.gguf")
	if code := run([]string{"codeplan", "-q", "model", "init", "--out", init, "--layers", "2", "--embd", "64", "--heads", "4", "--ff", "128", "--ctx", "512"}); code != 0 {
		t.Fatalf("model init: exit %d", code)
	}
	out := filepath.Join(dir, "trained.gguf")
	args := []string{"codeplan", "-q", "finetune", init, "--full", "--data", rows, "--out", out, "--epochs", "2",
		"--lr", "1e-3", "--ctx", "256", "--batch", "512", "--threads", "1", "--val-split", "0", "--weight-decay", "0.1"}
	if code := run(args); code != 0 {
		t.Fatalf("finetune --full: exit %d", code)
	}
	for _, p := range []string{out, strings.TrimSuffix(out, ".gguf") + ".log.csv", strings.TrimSuffix(out, ".gguf") + ".loss.png"} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("missing output %s: %v", filepath.Base(p), err)
		}
	}
	prompts := filepath.Join(dir, "p.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt":"What is 2+2?"}`+"\n"), 0o644)
	if code := run([]string{"codeplan", "-q", "generate", out, "--input", prompts, "--output", filepath.Join(dir, "a.jsonl"),
		"--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}); code != 0 {
		t.Errorf("generate with the trained model: exit %d", code)
	}
	for _, extra := range [][]string{{"--lora-rank", "4"}, {"--merge", filepath.Join(dir, "m.gguf")}, {"--lora"}} {
		bad := append(append([]string(nil), args...), extra...)
		bad[8] = filepath.Join(dir, "z.gguf")
		if code := run(bad); code != exitUsage {
			t.Errorf("--full with %v: exit %d, want %d", extra, code, exitUsage)
		}
	}
	// a quantized model cannot be trained fully: refused before loading
	q8 := filepath.Join(dir, "q8.gguf")
	if err := tiny.WriteAs(q8, tiny.DefaultConfig(), gguf.TensorQ8_0); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"codeplan", "-q", "finetune", q8, "--full", "--data", rows, "--out", filepath.Join(dir, "t.gguf")}); code != exitUsage {
		t.Errorf("--full on a Q8_0 model: exit %d, want %d", code, exitUsage)
	}
	if code, msg := runHostileChild(t, dir, "", nil, "finetune", init, "--full", "--data", rows, "--out", init); code != exitUsage ||
		!strings.Contains(msg, "--output: "+init+" is the model being trained") || crashTrace(msg) {
		t.Errorf("--out is the model: exit %d:\n%s", code, msg)
	}
	if code := run([]string{"codeplan", "-q", "finetune", init, "--lora=false", "--data", rows, "--out", filepath.Join(dir, "n.gguf")}); code != exitUsage {
		t.Errorf("--lora=false without --full: exit %d", code)
	}
}

// TestFinetuneFlagMessages: every setting finetune.Config.Validate refuses
// comes back as a *finetune.ConfigError whose message, as the command says
// it, names the flag that sets the field; every Config field a user sets
// has a flag; and the other finetune errors get the flags to use.
func TestFinetuneFlagMessages(t *testing.T) {
	valid := finetune.Config{Data: "d.jsonl", Out: "a.gguf", Rank: 8, Alpha: 16, Targets: finetune.Targets,
		Epochs: 2, LR: 1e-4, Schedule: finetune.Cosine, Ctx: 512, Batch: 512, GradAccum: 1, Seed: 42, MaxGradNorm: 1,
		Mode: "codeplan", Format: "trained"}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field, flag string
		edit        func(*finetune.Config)
	}{
		{"Data", "--input", func(c *finetune.Config) { c.Data = "" }},
		{"Out", "--output", func(c *finetune.Config) { c.Out = "" }},
		{"Merge", "--merge", func(c *finetune.Config) { c.Full, c.Merge = true, "m.gguf" }},
		{"Rank", "--lora-rank 5000", func(c *finetune.Config) { c.Rank = 5000 }},
		{"Alpha", "--lora-alpha -1", func(c *finetune.Config) { c.Alpha = -1 }},
		{"Epochs", "--epochs -1", func(c *finetune.Config) { c.Epochs = -1 }},
		{"LR", "--lr 2", func(c *finetune.Config) { c.LR = 2 }},
		{"Warmup", "--warmup -1", func(c *finetune.Config) { c.Warmup = -1 }},
		{"Ctx", "--ctx 4", func(c *finetune.Config) { c.Ctx = 4 }},
		{"Batch", "--batch 256 is smaller than --ctx 512", func(c *finetune.Config) { c.Batch = 256 }},
		{"GradAccum", "--grad-accum -1", func(c *finetune.Config) { c.GradAccum = -1 }},
		{"ValSplit", "--val-split 1", func(c *finetune.Config) { c.ValSplit = 1 }},
		{"MaxGradNorm", "--max-grad-norm NaN", func(c *finetune.Config) { c.MaxGradNorm = math.NaN() }},
		{"WeightDecay", "--weight-decay 2", func(c *finetune.Config) { c.WeightDecay = 2 }},
		{"CheckpointEvery", "--checkpoint-every -1", func(c *finetune.Config) { c.CheckpointEvery = -1 }},
		{"EvalEvery", "--eval-every -1", func(c *finetune.Config) { c.EvalEvery = -1 }},
		{"Mode", "--mode essay", func(c *finetune.Config) { c.Mode = "essay" }},
		{"Format", "--format chat", func(c *finetune.Config) { c.Format = "chat" }},
		{"Schedule", "--schedule step", func(c *finetune.Config) { c.Schedule = "step" }},
		{"Targets", "--lora-targets lm_head", func(c *finetune.Config) { c.Targets = []string{"lm_head"} }},
	} {
		c := valid
		tt.edit(&c)
		err := c.Validate()
		var ce *finetune.ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%s: %v", tt.field, err)
			continue
		}
		msg := finetuneMessage(err, c)
		if !strings.HasPrefix(msg.Error(), tt.flag) || !errors.As(msg, &ce) {
			t.Errorf("%s: the command says %q, want it to start with %q", tt.field, msg, tt.flag)
		}
	}

	// every field a user sets maps to a real flag of the command
	flags := map[string]bool{}
	for _, f := range finetuneCommand().Flags {
		for _, n := range f.Names() {
			flags[n] = true
		}
	}
	notFlags := map[string]bool{"Read": true, "Chat": true, "Logger": true, "Progress": true, "ProgressOut": true, "OnStep": true}
	ct := reflect.TypeOf(finetune.Config{})
	for i := 0; i < ct.NumField(); i++ {
		name := ct.Field(i).Name
		if flag, ok := finetuneFlags[name]; !notFlags[name] && (!ok || !flags[flag]) {
			t.Errorf("Config.%s has no flag in finetuneFlags (%q)", name, flag)
		}
	}
	for field, flag := range finetuneFlags {
		if _, ok := ct.FieldByName(field); !ok || !flags[flag] {
			t.Errorf("finetuneFlags[%s] = %s: no such field or flag", field, flag)
		}
	}

	// the checkpoint and training errors get the flags to use
	cfg := valid
	cfg.Out = "/runs/a.gguf"
	for _, tt := range []struct {
		err   error
		usage bool
		want  []string
	}{
		{fmt.Errorf("%w at /runs/a.ckpt.gguf", finetune.ErrCheckpointExists), true, []string{"exists at /runs/a.ckpt.gguf", "pass --resume", "delete it"}},
		{fmt.Errorf("%w at /runs/a.ckpt.gguf", finetune.ErrNoCheckpoint), true, []string{"--resume: no checkpoint", "without --resume"}},
		{fmt.Errorf("%w: x", finetune.ErrNothingToResume), true, []string{"--resume: ", "delete /runs/a.gguf", "another --output"}},
		{fmt.Errorf("c: %w: other settings (lr 1 -> 2)", finetune.ErrCheckpoint), true, []string{"lr 1 -> 2", "--input and flags", "delete /runs/a.ckpt.gguf"}},
		{&finetune.DivergedError{Step: 3, GradNorm: math.Inf(1), Loss: 9}, false, []string{"step 3", "lower --lr"}},
		{&finetune.InterruptedError{Step: 2, Steps: 9, Checkpoint: "/runs/a.ckpt.gguf"}, false, []string{"after step 2 of 9", "/runs/a.ckpt.gguf", "rerun with --resume"}},
	} {
		msg := finetuneMessage(tt.err, cfg)
		for _, w := range tt.want {
			if !strings.Contains(msg.Error(), w) {
				t.Errorf("%v: the command says %q, want %q in it", tt.err, msg, w)
			}
		}
		if !errors.Is(msg, tt.err) || isFinetuneUsage(tt.err) != tt.usage {
			t.Errorf("%v: wrapping lost or usage %v", tt.err, isFinetuneUsage(tt.err))
		}
	}
}

// copyTrainingRows copies finetune's test rows into dir and returns the copy's path.
func copyTrainingRows(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rows := filepath.Join(dir, "rows.jsonl")
	if err := os.WriteFile(rows, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return rows
}
