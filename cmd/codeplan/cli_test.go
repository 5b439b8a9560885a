package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/internal/version"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// runCLI runs the CLI as a child process (see TestMain) and returns its
// exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestVersionNamesLlamaCppCommit(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	if code != 0 || !strings.Contains(out, "llama.cpp "+version.LlamaCppCommit) || !strings.HasPrefix(out, "codeplan version ") {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
}

// TestGlobalFlagsAfterCommand checks that -q, --log-level and --log-format
// work after the command name as well as before it.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "nonsense", "info", "tiny"},
		{"info", "tiny", "--log-level", "nonsense"},
		{"info", "--log-level=nonsense", "tiny"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, `"nonsense"`) {
			t.Errorf("%v: exit %d, stderr %q: the bad level was not read as the global flag", args, code, stderr)
		}
	}
	// -q after the command silences the info-level "model ready" lines.
	code, _, stderr := runCLI(t, "info", "tiny", "-q", "--log-format", "json")
	if code != 0 || stderr != "" {
		t.Errorf("info tiny -q: exit %d, stderr %q", code, stderr)
	}
}

// TestInfoJSON checks info --json's keys: snake_case, no null for an empty
// map, and a description whose size is computed rather than "?B".
func TestInfoJSON(t *testing.T) {
	code, out, stderr := runCLI(t, "-q", "info", "tiny", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "null") {
		t.Errorf("info --json prints null: %s", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"path", "architecture", "description", "context_length", "embedding_length", "heads_kv", "params", "size_bytes", "vocab_size"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %s", k, out)
		}
	}
	for k := range m {
		if k != strings.ToLower(k) {
			t.Errorf("key %q is not snake_case", k)
		}
	}
	if d, _ := m["description"].(string); strings.Contains(d, "?") || !strings.Contains(d, "K") {
		t.Errorf("description %q should carry the computed size (tiny has ~120K parameters)", d)
	}
}

// TestInfoAdapter checks that info reads an adapter's training record.
func TestInfoAdapter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.gguf")
	w := gguf.NewLoRAWriter("llama", "test-lora", 32)
	w.SetUint32(finetune.KeyRank, 16)
	w.SetStrings(finetune.KeyTargets, []string{"attn_q", "attn_v"})
	w.SetString(finetune.KeyBaseFile, "base.gguf")
	w.SetString(finetune.KeyBaseFingerprint, "fp1234")
	w.SetString(finetune.KeyMode, "codeplan")
	w.SetString(finetune.KeyFormat, "trained")
	w.SetUint32(finetune.KeySteps, 120)
	w.SetUint32(finetune.KeyEpochs, 2)
	w.SetUint64(finetune.KeyTokens, 98765)
	if err := w.AddF32("blk.0.attn_q.weight.lora_a", []uint64{4, 2}, make([]float32, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "-q", "info", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"LoRA adapter", "fp1234", "base.gguf", "attn_q, attn_v", "codeplan", "trained", "120 (2 epochs, 98765 tokens)"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "-q", "info", p, "--json")
	var got struct {
		Type            string   `json:"type"`
		Rank            int      `json:"rank"`
		Alpha           float32  `json:"alpha"`
		Targets         []string `json:"targets"`
		BaseFingerprint string   `json:"base_fingerprint"`
		Mode            string   `json:"mode"`
		Steps           int      `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if got.Type != "lora_adapter" || got.Rank != 16 || got.Alpha != 32 || len(got.Targets) != 2 || got.BaseFingerprint != "fp1234" || got.Mode != "codeplan" || got.Steps != 120 {
		t.Errorf("info --json = %+v", got)
	}
}

// TestLoRAOnEveryModelCommand checks that extract and bench, like chat,
// generate, serve and eval, take --lora, and refuse an adapter made for
// another base.
func TestLoRAOnEveryModelCommand(t *testing.T) {
	dir := t.TempDir()
	lora := filepath.Join(dir, "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 4, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.gguf")
	bigger := tiny.DefaultConfig()
	bigger.Embedding *= 2
	if err := tiny.WriteLoRA(wrong, bigger, tiny.LoRAOptions{Rank: 2, Alpha: 4}); err != nil {
		t.Fatal(err)
	}
	in := writeCorpus(t, dir, 2)
	cmds := map[string][]string{
		"bench":   {"codeplan", "-q", "bench", "tiny", "--parallels", "1", "--pp", "16", "--tg", "4", "--threads", "1"},
		"extract": {"codeplan", "-q", "extract", "tiny", "--input", in, "--max-plan-tokens", "4", "--threads", "1", "--parallel", "1"},
	}
	for name, args := range cmds {
		out := []string{"--output", filepath.Join(dir, name+".jsonl")}
		if name == "bench" {
			out = nil
		}
		if code := run(append(append(args, out...), "--lora", lora, "--lora-scale", "0.5")); code != 0 {
			t.Errorf("%s --lora: exit %d", name, code)
		}
		if name != "bench" {
			out = []string{"--output", filepath.Join(dir, name+"-wrong.jsonl")}
		}
		if code := run(append(append(args, out...), "--lora", wrong)); code != exitUsage {
			t.Errorf("%s with an adapter for another base: exit %d, want %d", name, code, exitUsage)
		}
	}
}
