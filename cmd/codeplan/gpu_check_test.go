package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGPUCheckDryRun plays the device protocol of scripts/gpu-check.sh on
// the CPU (--dry-run), with this test binary standing in for codeplan
// (TestMain): call 1 runs the preflight, the bundle check, the CMake
// configure (without CUDA; skipped only where cmake is missing), writes the
// models and runs every check that has a CPU fallback; call 2
// (GPU_CHECK_CONTINUE=1, the state kept) reruns none of them. Every step that
// needs a GPU is skipped with its reason, and the report names both device
// calls with budgets that fit the session's device time.
func TestGPUCheckDryRun(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	type step struct {
		Call                      int
		Step, Status, Error, Note string
	}
	var rep struct {
		DryRun      bool `json:"dry_run"`
		Call        int  `json:"call"`
		Budget      int  `json:"budget_s"`
		DeviceTotal int  `json:"device_total_s"`
		Calls       []struct {
			Call     int    `json:"call"`
			Command  string `json:"command"`
			TimeoutS int    `json:"timeout_s"`
		} `json:"device_calls"`
		Steps []step `json:"steps"`
	}
	run := func(again bool) string {
		out := t.TempDir()
		cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "gpu-check.sh"), "--dry-run", out)
		cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1", "CODEPLAN_BIN="+self, "GPU_CHECK_WORK="+state)
		if again {
			cmd.Env = append(cmd.Env, "GPU_CHECK_CONTINUE=1")
		}
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("gpu-check --dry-run: %v\n%s", err, log)
		}
		raw, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("report.json: %v\n%s", err, raw)
		}
		return out
	}

	out := run(false)
	if !rep.DryRun || rep.Call != 1 || len(rep.Calls) != 2 {
		t.Fatalf("dry_run %v, call %d, device calls %+v", rep.DryRun, rep.Call, rep.Calls)
	}
	// the session's device time is 15 minutes; the protocol keeps 2 in reserve
	if rep.DeviceTotal > 13*60 || rep.Calls[0].TimeoutS > 540 || !strings.Contains(rep.Calls[1].Command, "--budget") {
		t.Errorf("device protocol: total %d s, calls %+v", rep.DeviceTotal, rep.Calls)
	}
	configure := "ok"
	if _, err := exec.LookPath("cmake"); err != nil {
		configure = "skipped"
	}
	want := []string{
		"00-preflight ok", "00-bundle ok", "01-configure " + configure, "01-build skipped", "01-models ok",
		"02-info ok", "03-ft-lora ok", "04-ft-full ok", "05-bench ok", "06-extract ok", "07-chat ok",
		"08-ft-1b skipped", "09-ft-8b skipped",
	}
	var got []string
	for _, s := range rep.Steps {
		got = append(got, s.Step+" "+s.Status)
		if s.Status == "skipped" && s.Note == "" {
			t.Errorf("step %s skipped without a reason", s.Step)
		}
		if s.Status == "failed" || s.Status == "timeout" {
			t.Errorf("step %s: %s %s", s.Step, s.Error, s.Note)
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("steps in order:\n got %v\nwant %v", got, want)
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
	for _, w := range []string{"dry run", "| 1 | 01-build | skipped |", "--budget 520", "--budget 130"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q:\n%s", w, md)
		}
	}

	// Call 2 keeps call 1's results and reruns no check.
	run(true)
	if rep.Call != 2 {
		t.Fatalf("second call numbered %d", rep.Call)
	}
	for _, s := range rep.Steps {
		if strings.HasPrefix(s.Step, "0") && s.Step >= "02" && s.Status == "ok" && s.Call != 1 {
			t.Errorf("check %s ran again in call %d", s.Step, s.Call)
		}
	}
}
