package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGPUCheckDryRun runs scripts/gpu-check.sh --dry-run with this test
// binary standing in for codeplan (TestMain). Every step that needs a GPU
// must be skipped with its reason, every other step must pass, and the
// device timeouts must fit the 9-minute budget. The dry run writes the toy
// shape instead of 1b (GPU_CHECK_DRY_SHAPE): TestWrite1B in llama/randmodel
// already writes, loads and decodes the 1b shape, and repeating 0.7 GB here
// would double that cost on a 2-core CI machine for no new check.
func TestGPUCheckDryRun(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "gpu-check.sh"), "--dry-run", out)
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1", "CODEPLAN_BIN="+self,
		"GPU_CHECK_WORK="+t.TempDir(), "GPU_CHECK_DRY_SHAPE=toy")
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("gpu-check --dry-run: %v\n%s", err, log)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		DryRun   bool `json:"dry_run"`
		Timeouts int  `json:"timeout_sum_s"`
		Budget   int  `json:"budget_s"`
		Steps    []struct {
			Step, Status, Error, Note string
		} `json:"steps"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report.json: %v\n%s", err, raw)
	}
	if !rep.DryRun || rep.Budget != 540 || rep.Timeouts > rep.Budget {
		t.Errorf("dry_run %v, timeouts %d s, budget %d s", rep.DryRun, rep.Timeouts, rep.Budget)
	}
	want := map[string]string{
		"00-bundle": "ok", "01-build": "skipped", "02-info": "ok", "03-model": "ok", "03-model-8b": "skipped",
		"04-bench": "ok", "05-extract": "ok", "06-chat": "ok", "07-finetune-1b": "ok", "07-finetune-8b": "skipped",
		// The PEFT block (issue 22): the export runs here; the transformers
		// comparison only where python has torch, transformers and peft.
		"08-peft-export": "ok", "08-peft-compare": peftCompareStatus(), "08-peft-timing": "skipped",
	}
	for _, s := range rep.Steps {
		if want[s.Step] != s.Status {
			t.Errorf("step %s: %s (%s %s), want %s", s.Step, s.Status, s.Error, s.Note, want[s.Step])
		}
		if s.Status == "skipped" && s.Note == "" {
			t.Errorf("step %s skipped without a reason", s.Step)
		}
		delete(want, s.Step)
	}
	if len(want) > 0 {
		t.Errorf("steps missing from the report: %v", want)
	}
	// The device returns at most eight files from its output folder.
	files, _ := os.ReadDir(out)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if strings.Join(names, " ") != "logs.tar.gz report.json report.md" {
		t.Errorf("output folder holds %v, want logs.tar.gz report.json report.md", names)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "dry run") || !strings.Contains(string(md), "| 01-build | skipped |") {
		t.Errorf("report.md:\n%s", md)
	}
}

// peftCompareStatus is what the dry run's transformers comparison should
// report on this machine: it runs where python3 has torch, transformers and
// peft, and is skipped (with its reason) elsewhere.
func peftCompareStatus() string {
	if exec.Command("python3", "-c", "import torch, transformers, peft").Run() == nil {
		return "ok"
	}
	return "skipped"
}
