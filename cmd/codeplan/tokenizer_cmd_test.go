package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/synth"
	"github.com/codeplan-dev/codeplan/tokenizer"
)

// synthRows writes synth rows and returns the path and every row's text
// fields.
func synthRows(t *testing.T, dir, kinds, steps, n string) (string, []map[string]any) {
	t.Helper()
	path := filepath.Join(dir, "rows.jsonl")
	if code, _, stderr := runCLI(t, "-q", "synth", "--kinds", kinds, "--steps", steps, "--n", n, "--seed", "7", "--out", path); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return path, rows
}

var textFields = []string{"prompt", "plan", "nl_plan", "control_plan", "response"}

// TestTokenizerTrainSynth trains a tokenizer on hops and branch rows as the
// miniature does and checks: every name, relation word, template word, code
// keyword, the mask and every number 0-99 is one token (with and without
// a leading space); encoding then decoding gives every row's text back;
// and a model written by 'model init --tokenizer' tokenises every text as
// the Go encoder does (llama.cpp reads the vocabulary as llama-bpe).
func TestTokenizerTrainSynth(t *testing.T) {
	dir := t.TempDir()
	rowsPath, rows := synthRows(t, dir, "hops,branch", "1-4", "40")
	tokDir := filepath.Join(dir, "tok")
	if code, _, stderr := runCLI(t, "-q", "tokenizer", "train", "--vocab", "1024", "--input", rowsPath, "--synth-words", "--output", tokDir); code != 0 {
		t.Fatalf("tokenizer train: exit %d: %s", code, stderr)
	}
	tk, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	// Training stops early when every piece of the corpus is one token.
	if tk.Len() > 1024 || tk.Len() < 600 {
		t.Errorf("%d tokens, want 600 to 1024", tk.Len())
	}
	for _, w := range synth.Words() {
		forms := []string{w}
		if _, err := strconv.Atoi(w); err != nil {
			forms = append(forms, " "+w)
		}
		for _, f := range forms {
			if ids := tk.Encode(f); len(ids) != 1 {
				t.Errorf("%q is %d tokens", f, len(ids))
			}
		}
	}
	for i := 0; i < 100; i++ {
		if ids := tk.Encode(strconv.Itoa(i)); len(ids) != 1 {
			t.Errorf("%d is %d tokens", i, len(ids))
		}
	}
	var texts []string
	for _, r := range rows {
		for _, f := range textFields {
			s, _ := r[f].(string)
			texts = append(texts, s)
			back, err := tk.Decode(tk.Encode(s))
			if err != nil || back != s {
				t.Fatalf("%s %s: round trip gave %q (%v), want %q", r["id"], f, back, err, s)
			}
		}
	}

	model := filepath.Join(dir, "init.gguf")
	if code, _, stderr := runCLI(t, "-q", "model", "init", "--tokenizer", tokDir, "--out", model, "--layers", "1", "--embd", "32", "--heads", "2", "--ff", "64", "--ctx", "256"); code != 0 {
		t.Fatalf("model init --tokenizer: exit %d: %s", code, stderr)
	}
	m := testmodel.LoadFile(t, model)
	eos, err := m.EOS()
	if err != nil {
		t.Fatal(err)
	}
	if m.VocabSize() != tk.Len() || eos != 258 {
		t.Errorf("model vocabulary %d, EOS %d; want %d and <|im_end|> (258)", m.VocabSize(), eos, tk.Len())
	}
	texts = append(texts, "<|im_start|>user\nWho is Ann's boss?<|im_end|>\n<|im_start|>assistant\n")
	for _, text := range texts[:min(len(texts), 400)] {
		got, err := m.Tokenize(text, false, true)
		if err != nil {
			t.Fatal(err)
		}
		want := tk.Encode(text)
		if len(got) != len(want) {
			t.Fatalf("%q: llama.cpp %v, Go %v", text, got, want)
		}
		for i := range got {
			if int(got[i]) != want[i] {
				t.Fatalf("%q: llama.cpp %v, Go %v", text, got, want)
			}
		}
	}
	// Bad input: usage errors naming the flag, no crash.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tokenizer", "train", "--vocab", "100", "--input", rowsPath, "--output", tokDir}, "--vocab"},
		{[]string{"tokenizer", "train", "--input", filepath.Join(dir, "missing.jsonl"), "--output", tokDir}, "--input"},
		{[]string{"tokenizer", "train", "--input", "/dev/zero", "--output", tokDir}, "--input"}, // a device is refused, not read
		{[]string{"tokenizer", "train", "--input", rowsPath}, "--output"},
		{[]string{"tokenizer", "train", "--input", rowsPath, "--output", tokDir, "extra"}, "extra"},
		{[]string{"model", "init", "--tokenizer", dir, "--out", model, "--force", "--layers", "1", "--embd", "32", "--heads", "2", "--ff", "64"}, "--tokenizer"},
	} {
		args := tc.args
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestPlansWithinPlanLimit: no gold plan (code, NL or control) of any synth
// family at the miniature's step counts 1-4 is longer than the eval's plan
// limit in scripts/mini-replication.sh, counted in tokens of a tokenizer
// trained on those rows, plan opener and closing fence included. (The first
// miniature's byte-level limit cut every code plan of k >= 2.)
func TestPlansWithinPlanLimit(t *testing.T) {
	script, err := os.ReadFile("../../scripts/mini-replication.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`MAX_PLAN_TOKENS=\$\{MAX_PLAN_TOKENS:-(\d+)\}`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no MAX_PLAN_TOKENS default in the script")
	}
	limit, _ := strconv.Atoi(string(m[1]))
	dir := t.TempDir()
	var kinds []string
	for _, k := range synth.AllKinds {
		kinds = append(kinds, string(k))
	}
	rowsPath, rows := synthRows(t, dir, strings.Join(kinds, ","), "1-4", "15")
	tokDir := filepath.Join(dir, "tok")
	if code, _, stderr := runCLI(t, "-q", "tokenizer", "train", "--vocab", "1024", "--input", rowsPath, "--synth-words", "--output", tokDir); code != 0 {
		t.Fatalf("tokenizer train: exit %d: %s", code, stderr)
	}
	tk, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	longest := map[string]int{}
	for _, r := range rows {
		for _, f := range []string{"plan", "nl_plan", "control_plan"} {
			mode := planner.CodePlan
			if f == "nl_plan" {
				mode = planner.NLPlan
			}
			text, err := planner.AssistantText(mode, r[f].(string), "")
			if err != nil {
				t.Fatal(err)
			}
			n := len(tk.Encode(text))
			key := r["kind"].(string) + " " + f
			longest[key] = max(longest[key], n)
			if n > limit {
				t.Errorf("%s %s: %d tokens, over the plan limit %d:\n%s", r["id"], f, n, limit, r[f])
			}
		}
	}
	t.Logf("longest plans in tokens (limit %d): %v", limit, longest)
}
