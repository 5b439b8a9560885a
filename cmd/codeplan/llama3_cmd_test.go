package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

// TestLlama3ChatStopsAtEOT: chat on a random model with the real Llama-3
// tokenizer and template, whose greedy choice is always <|eot_id|>: both
// phases end at once with finish "stop", not at the token limit.
func TestLlama3ChatStopsAtEOT(t *testing.T) {
	model := testmodel.Llama3Model(t, true)
	var out, errb bytes.Buffer
	app := newApp()
	app.Reader = strings.NewReader("What is 2+3*4?\n")
	app.Writer, app.ErrWriter = &out, &errb
	if err := app.Run(interspersed(app, []string{"codeplan", "-q", "chat", model, "--threads", "1", "--json", "--max-plan-tokens", "16", "--max-tokens", "16"})); err != nil {
		t.Fatalf("chat: %v\n%s", err, errb.String())
	}
	var turn struct {
		PlanFinish   string `json:"plan_finish"`
		Finish       string `json:"finish"`
		PlanTokens   int    `json:"plan_tokens"`
		AnswerTokens int    `json:"answer_tokens"`
		PromptTokens int    `json:"prompt_tokens"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &turn); err != nil {
		t.Fatalf("chat output %q: %v", out.String(), err)
	}
	if turn.PlanFinish != "stop" || turn.Finish != "stop" || turn.PlanTokens != 0 || turn.AnswerTokens != 0 || turn.PromptTokens < 10 {
		t.Errorf("turn %+v: want both phases stopped at <|eot_id|> at once", turn)
	}
}

// TestLlama3ExtractStopsAtEOT: extract's plans end at <|eot_id|> (rejected
// as empty, never as not_terminated, which would mean the token limit).
func TestLlama3ExtractStopsAtEOT(t *testing.T) {
	model := testmodel.Llama3Model(t, true)
	dir := t.TempDir()
	in := writeCorpus(t, dir, 4)
	out := filepath.Join(dir, "plans.jsonl")
	if code := run([]string{"codeplan", "-q", "extract", model, "--input", in, "--output", out, "--parallel", "2", "--max-plan-tokens", "16", "--threads", "1"}); code != 0 {
		t.Fatalf("extract exit %d", code)
	}
	data, err := os.ReadFile(rejectsPath(out))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d rejected rows, want 4", len(lines))
	}
	for _, l := range lines {
		if strings.Contains(l, "not_terminated") || !strings.Contains(l, "empty") {
			t.Errorf("reject %.200s: want reason empty (stopped at <|eot_id|>)", l)
		}
	}
}

// TestLlama3Finetune: finetune runs on a random model with the Llama-3
// tokenizer, and the trained target ends with <|eot_id|>, so a fine-tuned
// model learns to stop there.
func TestLlama3Finetune(t *testing.T) {
	model := testmodel.Llama3Model(t, false)
	m := testmodel.LoadFile(t, model)
	chat, ok := chattemplate.For(m)
	if !ok {
		t.Fatal("Llama-3 template not recognised")
	}
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: chat}
	prefix, target, err := p.TrainingExample("What is 17 + 25?", "return add(17, 25)", "42")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(prefix, "<|start_header_id|>assistant<|end_header_id|>\n\n") || !strings.HasSuffix(target, "42<|eot_id|>") {
		t.Errorf("prefix %q\ntarget %q", prefix, target)
	}
	dir := t.TempDir()
	rows, err := os.ReadFile(filepath.Join("..", "..", "finetune", "testdata", "rows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(data, rows, 0o644)
	outPath := filepath.Join(dir, "adapter.gguf")
	if code := run([]string{"codeplan", "-q", "finetune", model, "--data", data, "--out", outPath, "--epochs", "1",
		"--lora-rank", "4", "--ctx", "128", "--batch", "256", "--threads", "1", "--val-split", "0"}); code != 0 {
		t.Fatalf("finetune exit %d", code)
	}
	if st, err := os.Stat(outPath); err != nil || st.Size() == 0 {
		t.Errorf("adapter: %v", err)
	}
}
