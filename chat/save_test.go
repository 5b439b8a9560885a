package chat

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/planner"
)

var sample = []Exchange{
	{Turn: 1, Mode: planner.CodePlan, User: "What is 2+3*4?", Reply: Reply{
		Plan: "p = mul(3, 4)\nreturn add(2, p)", Answer: "14", PlanFinish: "stop", Finish: "stop", PromptTokens: 30, PlanTokens: 12, AnswerTokens: 2}},
	{Turn: 2, Mode: planner.Direct, User: "and <html> & \"quotes\"?", Reply: Reply{Answer: "line1\nline2", Finish: "length", AnswerTokens: 9}},
	{Turn: 3, Mode: planner.NLPlan, User: "fences", Reply: Reply{Plan: "1. write ```code```", Answer: "ok", PlanFinish: "length", Finish: "stop"}},
}

func TestSaveJSONLRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.jsonl")
	if err := SaveFile(path, sample); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadJSONL(f, path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sample) {
		t.Errorf("read back %+v\nwant %+v", got, sample)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp"))
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestSaveMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.MD")
	if err := SaveFile(path, sample); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"# codeplan chat\n",
		"## Turn 1 (codeplan)\n\n**User:**\n\nWhat is 2+3*4?\n",
		"**Plan:**\n\n```python\np = mul(3, 4)\nreturn add(2, p)\n```\n",
		"**Answer:**\n\n14\n",
		"## Turn 2 (direct)",
		"line1\nline2\n\n*(cut off at the token limit)*",
		"````\n1. write ```code```\n````\n", // a longer fence around a plan with ```
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "**Plan:**") != 2 {
		t.Errorf("the direct turn got a plan section:\n%s", md)
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	if err := SaveFile(filepath.Join(dir, "chat.txt"), sample); err == nil || !strings.Contains(err.Error(), "chat.txt") {
		t.Errorf("unknown extension: err = %v", err)
	}
	// The error names the file the user asked for, not the temporary file
	// the save goes through.
	if err := SaveFile(filepath.Join(dir, "missing", "chat.md"), sample); err == nil || strings.Contains(err.Error(), ".tmp") || !strings.Contains(err.Error(), "chat.md: ") {
		t.Errorf("saving into a missing folder: err = %v", err)
	}
	folder := filepath.Join(dir, "folder.md")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SaveFile(folder, sample); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("saving over a folder: err = %v", err)
	}
	_, err := ReadJSONL(strings.NewReader(`{"turn":1,"mode":"direct","user":"a","answer":"b","finish":"stop","prompt_tokens":1,"answer_tokens":1}`+"\n{bad\n"), "x.jsonl")
	if err == nil || !strings.Contains(err.Error(), "x.jsonl:2:") {
		t.Errorf("bad line: err = %v", err)
	}
}
