package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// writeTrainedAdapter writes a tiny-model adapter that records the mode and
// format codeplan finetune would have trained it in.
func writeTrainedAdapter(t *testing.T, dir, mode, format string) string {
	t.Helper()
	raw := filepath.Join(dir, "raw.gguf")
	if err := tiny.WriteLoRA(raw, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 4, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	alpha, _ := f.Float32(gguf.KeyAdapterAlpha)
	w := gguf.NewLoRAWriter(arch, "trained-adapter", alpha)
	w.SetString(finetune.KeyMode, mode)
	w.SetString(finetune.KeyFormat, format)
	for _, ti := range f.Tensors() {
		vals, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddF32(ti.Name, ti.Shape, vals); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, mode+"-"+format+".gguf")
	if err := w.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestModeAutoAndTrainingWarnings checks --mode auto and --format auto
// against an adapter's training record, the warning for an explicit mode
// that differs from it, and the error for auto without a record.
func TestModeAutoAndTrainingWarnings(t *testing.T) {
	dir := t.TempDir()
	lora := writeTrainedAdapter(t, dir, "nlplan", "trained")
	in := filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(in, []byte(`{"prompt":"hello"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--log-format", "json", "generate", "tiny", "--input", in, "--max-tokens", "4", "--max-plan-tokens", "4", "--threads", "1"}

	out := filepath.Join(dir, "auto.jsonl")
	code, _, stderr := runCLI(t, append(base, "--output", out, "--lora", lora, "--mode", "auto")...)
	if code != 0 {
		t.Fatalf("--mode auto: exit %d\n%s", code, stderr)
	}
	row, _ := os.ReadFile(out)
	if m := gjson.GetBytes(row, "mode").String(); m != "nlplan" {
		t.Errorf("--mode auto answered in %q, want the adapter's nlplan", m)
	}
	if f := gjson.GetBytes(row, "run.format").String(); f != "trained" {
		t.Errorf("--format auto used %q, want the adapter's trained format (row %s)", f, row)
	}
	if strings.Contains(stderr, "not fine-tuned on") {
		t.Errorf("a warning although the modes agree:\n%s", stderr)
	}

	code, _, stderr = runCLI(t, append(base, "--output", filepath.Join(dir, "code.jsonl"), "--lora", lora, "--mode", "codeplan", "--format", "prompted")...)
	if code != 0 || !strings.Contains(stderr, `"trained_mode":"nlplan"`) || !strings.Contains(stderr, `"trained_format":"trained"`) {
		t.Errorf("explicit codeplan/prompted with an nlplan/trained adapter: exit %d, no warnings naming both:\n%s", code, stderr)
	}

	code, _, stderr = runCLI(t, append(base, "--output", filepath.Join(dir, "none.jsonl"), "--mode", "auto")...)
	if code != exitUsage || !strings.Contains(stderr, "--mode auto") || !strings.Contains(stderr, "records no training mode") {
		t.Errorf("--mode auto without a record: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.jsonl")); err == nil {
		t.Error("a refused run left an output file")
	}
}
