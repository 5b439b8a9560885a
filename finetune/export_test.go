package finetune

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
)

// byteTokenizer gives one token per byte, so that tokens decode back to
// exactly the text LoadExamples rendered.
type byteTokenizer struct{}

func (byteTokenizer) Tokenize(text string, _, _ bool) ([]llama.Token, error) {
	out := make([]llama.Token, len(text))
	for i := 0; i < len(text); i++ {
		out[i] = llama.Token(text[i])
	}
	return out, nil
}

func detok(ts []llama.Token) string {
	b := make([]byte, len(ts))
	for i, t := range ts {
		b[i] = byte(t)
	}
	return string(b)
}

// synthRows has both plan forms, as codeplan synth writes them, so nlplan
// takes nl_plan.
const synthRows = `{"id":"s1","prompt":"Add 2 and 3.","plan":"a = 2\nreturn add(a, 3)","nl_plan":"1. Take 2.\n2. Add 3.","response":"2 + 3 = 5. The answer is 5."}
{"id":"s2","prompt":"Double 4.","plan":"return 2 * 4","nl_plan":"1. Multiply 4 by 2.","response":"The answer is 8."}
`

// TestExportMatchesTraining renders every row through finetune's own path
// (LoadExamples, tokens back to bytes) and through ExportRows, and checks
// that the exported messages, under the same chat template, are byte for
// byte the training text: the prompt part, and the assistant turn followed by
// the template's end-of-turn marker, for every mode, both formats, a system
// message and the extractor task.
func TestExportMatchesTraining(t *testing.T) {
	synth := filepath.Join(t.TempDir(), "synth.jsonl")
	if err := os.WriteFile(synth, []byte(synthRows), 0o644); err != nil {
		t.Fatal(err)
	}
	paper, err := planner.TemplateFromFlag("")
	if err != nil {
		t.Fatal(err)
	}
	type variant struct {
		name       string
		file       string
		mode       planner.Mode
		format     planner.Format
		system     string
		extraction *planner.Template
	}
	var vs []variant
	for _, file := range []string{"testdata/rows.jsonl", synth} {
		for _, m := range planner.Modes() {
			for _, f := range planner.Formats() {
				vs = append(vs, variant{name: filepath.Base(file) + "/" + string(m) + "/" + string(f), file: file, mode: m, format: f})
			}
		}
	}
	vs = append(vs,
		variant{name: "system", file: "testdata/rows.jsonl", mode: planner.CodePlan, format: planner.Trained, system: "You plan in code."},
		variant{name: "extractor", file: "testdata/rows.jsonl", mode: planner.Direct, format: planner.Trained, extraction: paper})
	for _, v := range vs {
		ex, _, err := LoadExamples(v.file, DataOptions{Tokenizer: byteTokenizer{}, Ctx: 1 << 20, Extraction: v.extraction,
			Prompter: planner.Prompter{Mode: v.mode, Format: v.format, Chat: planner.ChatML{}, System: v.system}})
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		byID := map[string]Example{}
		for _, e := range ex {
			byID[e.ID] = e
		}
		outs := map[ExportLayout]*bytes.Buffer{}
		for _, layout := range ExportLayouts() {
			var buf bytes.Buffer
			st, err := ExportRows(v.file, ExportOptions{Mode: v.mode, Format: v.format, System: v.system, Extraction: v.extraction, Layout: layout}, &buf, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", v.name, layout, err)
			}
			if st.Train != len(ex) || st.Val != 0 {
				t.Fatalf("%s %s: %+v, want %d rows", v.name, layout, st, len(ex))
			}
			outs[layout] = &buf
		}
		lines := strings.Split(strings.TrimSpace(outs[Messages].String()), "\n")
		if len(lines) != len(ex) {
			t.Fatalf("%s: %d lines for %d examples", v.name, len(lines), len(ex))
		}
		assistants := map[string]string{}
		for _, line := range lines {
			var row struct {
				ID       string            `json:"id"`
				Messages []planner.Message `json:"messages"`
			}
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatal(err)
			}
			e, ok := byID[row.ID]
			if !ok {
				t.Fatalf("%s: exported row %q that finetune did not use", v.name, row.ID)
			}
			prefix, target := detok(e.Tokens[:e.Prefix]), detok(e.Tokens[e.Prefix:])
			n := len(row.Messages)
			gotPrefix, _ := planner.ChatML{}.ApplyTemplate(row.Messages[:n-1], true)
			gotFull, _ := planner.ChatML{}.ApplyTemplate(row.Messages, false)
			asst := row.Messages[n-1]
			if gotPrefix != prefix || gotFull != prefix+target {
				t.Errorf("%s row %s: exported messages render\n%q\nfinetune trains on\n%q", v.name, row.ID, gotFull, prefix+target)
			}
			if asst.Role != planner.RoleAssistant || asst.Content+planner.ChatMLEnd+"\n" != target {
				t.Errorf("%s row %s: assistant %q, target %q", v.name, row.ID, asst.Content, target)
			}
			if v.mode == planner.CodePlan && v.extraction == nil && !strings.HasPrefix(asst.Content, "Plan:\n```python\n") {
				t.Errorf("%s row %s: not the trained layout: %q", v.name, row.ID, asst.Content)
			}
			if v.mode == planner.NLPlan && strings.Contains(v.file, "synth") && !strings.HasPrefix(asst.Content, "Plan:\n1. ") {
				t.Errorf("%s row %s: nlplan did not take nl_plan: %q", v.name, row.ID, asst.Content)
			}
			assistants[row.ID] = asst.Content
		}
		// The other layouts carry the same assistant text and user turn.
		for _, line := range strings.Split(strings.TrimSpace(outs[ShareGPT].String()), "\n") {
			var row struct {
				ID   string `json:"id"`
				Conv []struct {
					From  string `json:"from"`
					Value string `json:"value"`
				} `json:"conversations"`
			}
			json.Unmarshal([]byte(line), &row)
			last := row.Conv[len(row.Conv)-1]
			if last.From != "gpt" || last.Value != assistants[row.ID] || row.Conv[len(row.Conv)-2].From != "human" {
				t.Errorf("%s sharegpt row %s: %+v", v.name, row.ID, row.Conv)
			}
			if v.system != "" && (row.Conv[0].From != "system" || row.Conv[0].Value != v.system) {
				t.Errorf("%s sharegpt row %s: no system turn", v.name, row.ID)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(outs[Alpaca].String()), "\n") {
			var row struct{ ID, Instruction, Input, Output, System string }
			json.Unmarshal([]byte(line), &row)
			if row.Output != assistants[row.ID] || row.Input != "" || row.Instruction == "" || row.System != v.system {
				t.Errorf("%s alpaca row %s: %+v", v.name, row.ID, row)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(outs[PromptCompletion].String()), "\n") {
			var row struct {
				ID         string            `json:"id"`
				Prompt     []planner.Message `json:"prompt"`
				Completion []planner.Message `json:"completion"`
			}
			json.Unmarshal([]byte(line), &row)
			if len(row.Completion) != 1 || row.Completion[0].Content != assistants[row.ID] || row.Prompt[len(row.Prompt)-1].Role != planner.RoleUser {
				t.Errorf("%s prompt-completion row %s: %+v", v.name, row.ID, row)
			}
		}
	}
}

// TestExportValSplit: the held-out rows are the ones finetune's --val-split
// holds out with the same seed.
func TestExportValSplit(t *testing.T) {
	ex, _, err := LoadExamples("testdata/rows.jsonl", DataOptions{Tokenizer: byteTokenizer{}, Ctx: 1 << 20,
		Prompter: planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{1, 42, 7} {
		_, val := splitValidation(ex, 0.34, seed)
		want := map[string]bool{}
		for _, i := range val {
			want[ex[i].ID] = true
		}
		var train, held bytes.Buffer
		st, err := ExportRows("testdata/rows.jsonl", ExportOptions{Mode: planner.CodePlan, Format: planner.Trained, Layout: Messages,
			ValSplit: 0.34, Seed: seed}, &train, &held)
		if err != nil {
			t.Fatal(err)
		}
		if st.Val != len(want) || st.Train != len(ex)-len(want) || len(want) == 0 {
			t.Fatalf("seed %d: %+v, finetune holds out %v", seed, st, want)
		}
		for _, line := range strings.Split(strings.TrimSpace(held.String()), "\n") {
			var row struct{ ID string }
			json.Unmarshal([]byte(line), &row)
			if !want[row.ID] {
				t.Errorf("seed %d: exported %s as validation, finetune holds out %v", seed, row.ID, want)
			}
		}
	}
	if _, err := ExportRows("-", ExportOptions{Mode: planner.CodePlan, Format: planner.Trained, Layout: Messages, ValSplit: 0.5}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("a split of stdin was accepted")
	}
}

func TestExportSkipsRowsWithoutPlan(t *testing.T) {
	var buf bytes.Buffer
	var warned []string
	_, err := ExportRows("testdata/bad.jsonl", ExportOptions{Mode: planner.CodePlan, Format: planner.Trained, Layout: Messages,
		Warn: func(s string) { warned = append(warned, s) }}, &buf, nil)
	if err == nil || !strings.Contains(err.Error(), "no usable training rows") || len(warned) != 2 || buf.Len() != 0 {
		t.Errorf("err %v, warnings %q, output %q", err, warned, buf.String())
	}
	if _, err := ParseExportLayout("jsonl"); err == nil {
		t.Error("unknown layout accepted")
	}
}
