package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/hf"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// noCrash fails the test when output carries a Go crash trace.
func noCrash(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{"goroutine ", "SIGSEGV", "panic:"} {
		if strings.Contains(out, s) {
			t.Errorf("%s: crash trace in the output:\n%s", what, out)
		}
	}
}

// logitsJSON runs codeplan model logits and decodes its output.
func logitsJSON(t *testing.T, args ...string) (toks []int, logits []float32) {
	t.Helper()
	code, out, stderr := runCLI(t, append([]string{"-q", "model", "logits", "--threads", "1", "--cache-type", "f32"}, args...)...)
	if code != 0 {
		t.Fatalf("model logits %v: exit %d: %s", args, code, stderr)
	}
	var r struct {
		Tokens []int     `json:"tokens"`
		Logits []float32 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("model logits output: %v\n%s", err, out)
	}
	return r.Tokens, r.Logits
}

// TestLoRAExportImportCLI: an adapter trained by codeplan finetune goes to
// a PEFT folder and back, bit for bit; with --mode the imported adapter
// records it, so --mode auto works, and it changes the logits exactly as the
// original does.
func TestLoRAExportImportCLI(t *testing.T) {
	dir := t.TempDir()
	model := testModelPath(t)
	data := filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl")
	adapter := filepath.Join(dir, "trained.gguf")
	if code, _, stderr := runCLI(t, "-q", "finetune", model, "--data", data, "--out", adapter, "--epochs", "1", "--lora-rank", "4",
		"--lr", "0.05", "--val-split", "0", "--threads", "1", "--ctx", "256", "--batch", "256"); code != 0 {
		t.Fatalf("finetune: exit %d: %s", code, stderr)
	}
	peft := filepath.Join(dir, "peft")
	if code, _, stderr := runCLI(t, "-q", "lora", "export", adapter, "--base", model, "--out", peft); code != 0 {
		t.Fatalf("lora export: exit %d: %s", code, stderr)
	}
	var cfg hf.PEFTConfig
	raw, _ := os.ReadFile(filepath.Join(peft, hf.AdapterConfigFile))
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.PEFTType != "LORA" || cfg.R != 4 || cfg.LoRAAlpha != 16 || len(cfg.TargetModules) != 7 {
		t.Fatalf("adapter_config.json %v: %s", err, raw)
	}
	back := filepath.Join(dir, "back.gguf")
	if code, _, stderr := runCLI(t, "-q", "lora", "import", peft, "--base", model, "--output", back); code != 0 {
		t.Fatalf("lora import: exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(adapter)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) {
		t.Errorf("GGUF -> PEFT -> GGUF changed the adapter (%d -> %d bytes)", len(a), len(b))
	}
	// An existing output is refused without --force.
	code, _, stderr := runCLI(t, "-q", "lora", "import", peft, "--base", model, "--output", back)
	if code != exitUsage || !strings.Contains(stderr, "--force") {
		t.Errorf("import over an existing file: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "-q", "lora", "import", peft, "--base", model, "--output", back, "--force", "--mode", "nlplan"); code != 0 {
		t.Fatalf("lora import --mode: exit %d: %s", code, stderr)
	}
	info, err := finetune.ReadAdapterInfo(back)
	if err != nil || info.Mode != "nlplan" || info.Format != "trained" || info.BaseFingerprint == "" {
		t.Errorf("imported adapter records %+v, %v", info, err)
	}
	toks, plain := logitsJSON(t, model, "--prompt", "What is 2+3?")
	_, orig := logitsJSON(t, model, "--lora", adapter, "--prompt", "What is 2+3?")
	_, imported := logitsJSON(t, model, "--lora", back, "--prompt", "What is 2+3?")
	if len(toks) == 0 || len(plain) != tiny.VocabSize {
		t.Fatalf("%d tokens, %d logits", len(toks), len(plain))
	}
	same, changed := true, false
	for i := range orig {
		same = same && orig[i] == imported[i]
		changed = changed || orig[i] != plain[i]
	}
	if !same || !changed {
		t.Errorf("imported adapter gives the original's logits: %v; the adapter changes them: %v", same, changed)
	}
}

// testModelPath is the tiny model's file.
func testModelPath(t *testing.T) string {
	t.Helper()
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExportHFCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hf")
	code, stdout, stderr := runCLI(t, "model", "export-hf", "tiny", "--output", out)
	if code != 0 || strings.TrimSpace(stdout) != out {
		t.Fatalf("export-hf: exit %d: %s %s", code, stdout, stderr)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("export-hf wrote no %s", f)
		}
	}
	// A quantized model is bad input: exit 2 with the reason.
	q := filepath.Join(t.TempDir(), "q.gguf")
	if err := tiny.WriteAs(q, tiny.DefaultConfig(), gguf.TensorQ8_0); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "-q", "model", "export-hf", q, "--output", filepath.Join(t.TempDir(), "x"))
	if code != exitUsage || !strings.Contains(stderr, "F32, F16 or BF16") {
		t.Errorf("quantized: exit %d: %s", code, stderr)
	}
	noCrash(t, "quantized export-hf", stderr)
	code, _, stderr = runCLI(t, "-q", "model", "export-hf", "tiny", "--output", out)
	if code != exitUsage || !strings.Contains(stderr, "--force") {
		t.Errorf("into a non-empty folder: exit %d: %s", code, stderr)
	}
}

func TestLoRACLIRefusals(t *testing.T) {
	dir := t.TempDir()
	model := testModelPath(t)
	dora := filepath.Join(dir, "dora")
	os.MkdirAll(dora, 0o755)
	os.WriteFile(filepath.Join(dora, hf.AdapterConfigFile), []byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"use_dora":true,"target_modules":["q_proj"]}`), 0o644)
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"lora", "import", dora, "--base", model, "--output", filepath.Join(dir, "o.gguf")}, "DoRA"},
		{[]string{"lora", "import", dora, "--output", filepath.Join(dir, "o.gguf")}, "--base"},
		{[]string{"lora", "import", filepath.Join(dir, "missing"), "--base", model, "--output", filepath.Join(dir, "o.gguf")}, "missing"},
		{[]string{"lora", "import", dora, "--base", model, "--output", filepath.Join(dir, "o.gguf"), "--format", "trained"}, "--mode"},
		{[]string{"lora", "export", model, "--output", filepath.Join(dir, "p")}, "not a LoRA adapter"},
		{[]string{"lora", "export", filepath.Join(dir, "missing.gguf"), "--output", filepath.Join(dir, "p")}, "missing.gguf"},
		{[]string{"export", "--input", filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"), "--output", filepath.Join(dir, "x.jsonl"), "--to", "csv"}, "--to"},
		{[]string{"export", "--input", filepath.Join(dir, "none.jsonl"), "--output", filepath.Join(dir, "x.jsonl")}, "none.jsonl"},
		{[]string{"model", "logits", "tiny"}, "--prompt"},
		{[]string{"export", "--input", filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"), "--output", filepath.Join(dir, "x.jsonl"),
			"--val-split", "0.2", "--val-output", filepath.Join(dir, "x.jsonl")}, "of their own"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, append([]string{"-q"}, c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, want %d mentioning %q: %s", c.args, code, exitUsage, c.msg, stderr)
		}
		noCrash(t, strings.Join(c.args, " "), stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "o.gguf")); err == nil {
		t.Error("a refused import left an output file")
	}
}

func TestExportCLI(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl")
	out := filepath.Join(dir, "train.jsonl")
	code, _, stderr := runCLI(t, "export", "--input", in, "--output", out, "--to", "sharegpt", "--mode", "nlplan", "--val-split", "0.34", "--system", "Plan first.")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "2 validation") || !strings.Contains(stderr, "4 train") {
		t.Errorf("summary: %s", stderr)
	}
	train, _ := os.ReadFile(out)
	val, _ := os.ReadFile(filepath.Join(dir, "train.val.jsonl"))
	if strings.Count(string(train), "\n") != 4 || strings.Count(string(val), "\n") != 2 ||
		!strings.Contains(string(train), `"from":"gpt","value":"Plan:\n`) || !strings.Contains(string(train), `"from":"system","value":"Plan first."`) {
		t.Errorf("train:\n%s\nval:\n%s", train, val)
	}
	// To stdout.
	code, stdout, stderr := runCLI(t, "-q", "export", "--input", in, "--output", "-", "--to", "alpaca", "--mode", "direct")
	if code != 0 || strings.Count(stdout, "\n") != 6 || !strings.Contains(stdout, `"output":"17 + 25 = 42."`) {
		t.Errorf("export to stdout: exit %d: %s %s", code, stdout, stderr)
	}
}
