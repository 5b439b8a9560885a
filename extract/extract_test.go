package extract

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
)

// fakeGen answers by the row id: a good plan, no code, a run-away plan, a
// prompt that is too long, or (once) a transient failure.
type fakeGen struct{ failures atomic.Int32 }

func (f *fakeGen) Generate(_ context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	if len(msgs) != 1 || !strings.Contains(msgs[0].Content, "Response:") {
		return Generation{}, fmt.Errorf("unexpected prompt %q", msgs)
	}
	switch {
	case strings.HasPrefix(id, "good"):
		return Generation{Text: "```python\ndef solve(q):\n    values = read_numbers(q)\n    total = add(values)\n    return total\n```", Tokens: 30, PromptTokens: 100}, nil
	case strings.HasPrefix(id, "prose"):
		return Generation{Text: "I think the response adds the numbers together and reports the sum.", Tokens: 15}, nil
	case strings.HasPrefix(id, "runaway"):
		return Generation{Text: "```python\ndef solve(q):\n    for x in", HitLimit: true, Tokens: maxTokens}, nil
	case strings.HasPrefix(id, "full"):
		// The context filled before the plan limit; full2's row is longer.
		fit := 5000
		if id == "full2" {
			fit = 7000
		}
		return Generation{Text: "```python\ndef solve(q):\n    for x in", HitLimit: true, ContextFull: true, FitContext: fit, Tokens: maxTokens / 2, PromptTokens: 90}, nil
	case strings.HasPrefix(id, "long"):
		return Generation{}, fmt.Errorf("%w: 9000 tokens", lm.ErrPromptTooLong)
	case strings.HasPrefix(id, "flaky") && f.failures.Add(1) == 1:
		return Generation{}, errors.New("connection reset")
	}
	return Generation{Text: "```python\ndef f():\n    step_one()\n    step_two(x)\n    return result\n```", Tokens: 20}, nil
}

func lines(t *testing.T, p string) []map[string]any {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestRunSortsRowsIntoOutputAndRejects(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for _, id := range []string{"good1", "good2", "prose1", "runaway1", "long1", "flaky1", "good1"} {
		fmt.Fprintf(&b, `{"id":%q,"prompt":"What is 2 plus 3?","response":"Add 2 and 3 to get 5. The answer is 5."}`+"\n", id)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	cfg := Config{Input: in, Output: filepath.Join(dir, "out.jsonl"), Rejects: filepath.Join(dir, "rej.jsonl"),
		Workers: 3, Model: "fake.gguf", Logger: zerolog.Nop()}
	gen := &fakeGen{}
	sum, err := Run(context.Background(), context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Written != 2 || sum.Rejected != 3 || sum.Failed != 1 || sum.Duplicates != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Reasons[string(planner.NoCode)] != 1 || sum.Reasons[string(planner.NotTerminated)] != 1 || sum.Reasons[string(ReasonPromptTooLong)] != 1 {
		t.Errorf("reasons %v", sum.Reasons)
	}
	if sum.PlanWords <= 0 || sum.PromptWords != 5 || sum.ResponseWord != 11 {
		t.Errorf("mean words %.1f / %.1f / %.1f", sum.PromptWords, sum.PlanWords, sum.ResponseWord)
	}
	out := lines(t, cfg.Output)
	for _, row := range out {
		if !strings.Contains(row["plan"].(string), "def solve") || row["template_hash"] != planner.DefaultTemplate().Hash() || row["model"] != "fake.gguf" {
			t.Errorf("output row %v", row)
		}
		if strings.Contains(row["plan"].(string), "```") {
			t.Errorf("plan still fenced: %q", row["plan"])
		}
	}
	// The flaky row failed once: a rerun retries it and nothing else.
	sum, err = Run(context.Background(), context.Background(), gen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Processed != 1 || sum.Written != 1 || sum.Resumed != 6 { // the repeated good1 counts as done too
		t.Errorf("rerun summary %+v", sum)
	}
	if n := len(lines(t, cfg.Output)) + len(lines(t, cfg.Rejects)); n != 6 {
		t.Errorf("%d result rows, want 6", n)
	}
}

func TestRunEmptyInput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(in, nil, 0o644)
	_, err := Run(context.Background(), context.Background(), &fakeGen{}, Config{Input: in, Output: filepath.Join(dir, "o.jsonl"), Logger: zerolog.Nop()})
	if !errors.Is(err, dataset.ErrBadInput) || !strings.Contains(err.Error(), "holds no rows") {
		t.Errorf("empty input: %v", err)
	}
}

func TestSharedPrefix(t *testing.T) {
	// The paper's template puts the row first: only the chat header and
	// "Prompt: " are shared. The structured one shares its whole instruction.
	paper := SharedPrefix(planner.DefaultTemplate(), planner.ChatML{})
	if paper != "<|im_start|>user\nPrompt: " {
		t.Errorf("paper's template: shared prefix %q", paper)
	}
	structured, _ := planner.NamedTemplate("structured")
	for _, tmpl := range []*planner.Template{planner.DefaultTemplate(), structured} {
		shared := SharedPrefix(tmpl, planner.ChatML{})
		if !strings.HasPrefix(shared, "<|im_start|>user\n") || (tmpl == structured && len(shared) < 200) {
			t.Fatalf("%s: shared prefix %q", tmpl.Source(), shared)
		}
		// Every rendered extraction prompt starts with it.
		for _, row := range [][2]string{{"What is 2+2?", "4"}, {"", "x"}, {"Q with {{braces}}", "R"}} {
			text, err := tmpl.Render(row[0], row[1])
			if err != nil {
				t.Fatal(err)
			}
			full, _ := planner.ChatML{}.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: text}}, true)
			if !strings.HasPrefix(full, shared) {
				t.Errorf("%s: prompt for %q does not start with the shared prefix", tmpl.Source(), row[0])
			}
		}
	}
}

// TestSharedPrefixWithModelTemplate checks the shared prefix through the
// model's own (C-side) chat template, where a NUL byte in the sentinel once
// cut the text short and silently disabled the cache.
func TestSharedPrefixWithModelTemplate(t *testing.T) {
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.LoadModel(p, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	chat := chattemplate.Model{Model: m}
	tmpl, _ := planner.NamedTemplate("structured")
	shared := SharedPrefix(tmpl, chat)
	if len(shared) < 200 {
		t.Fatalf("shared prefix %q", shared)
	}
	text, _ := tmpl.Render("Q?", "R.")
	full, _ := chat.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: text}}, true)
	if !strings.HasPrefix(full, shared) {
		t.Error("rendered prompt does not start with the shared prefix")
	}
}

// TestRunReferenceField checks the exact-match count against reference
// plans: the same plan up to layout matches, another plan does not, a
// rejected row counts as a row with a reference but never as a match, and
// a row without a reference counts for neither.
func TestRunReferenceField(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	same := "def solve(q):  \n    values = read_numbers(q)\n    total = add(values)\n    return total\n\n"
	rows := []string{
		fmt.Sprintf(`{"id":"good1","prompt":"What is 2 plus 3?","response":"5","plan":%q}`, same),
		`{"id":"good2","prompt":"What is 2 plus 4?","response":"6","plan":"def solve(q):\n    return 6"}`,
		`{"id":"prose1","prompt":"What is 2 plus 5?","response":"7","plan":"def solve(q):\n    return 7"}`,
		`{"id":"good3","prompt":"What is 2 plus 6?","response":"8"}`,
	}
	os.WriteFile(in, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	cfg := Config{Input: in, Output: filepath.Join(dir, "out.jsonl"), Rejects: filepath.Join(dir, "rej.jsonl"),
		Workers: 2, ReferenceField: "plan", Logger: zerolog.Nop()}
	sum, err := Run(context.Background(), context.Background(), &fakeGen{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ReferenceRows != 3 || sum.ReferenceMatches != 1 {
		t.Errorf("reference rows %d, matches %d; want 3 and 1", sum.ReferenceRows, sum.ReferenceMatches)
	}
	for _, row := range lines(t, cfg.Output) {
		got, has := row["matches_reference"]
		switch row["id"] {
		case "good1":
			if got != true {
				t.Errorf("good1 matches_reference = %v, want true", got)
			}
		case "good2":
			if got != false {
				t.Errorf("good2 matches_reference = %v, want false", got)
			}
		case "good3":
			if has {
				t.Errorf("good3 has no reference but matches_reference = %v", got)
			}
		}
	}
}

// TestRunContextFull: a plan cut because the row's share of the context
// filled is rejected as context_full, not as the model's not_terminated,
// and the summary names the --ctx that would fit every such row.
func TestRunContextFull(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for _, id := range []string{"full1", "full2", "runaway1", "good1"} {
		fmt.Fprintf(&b, `{"id":%q,"prompt":"What is 2 plus 3?","response":"Add 2 and 3 to get 5."}`+"\n", id)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	cfg := Config{Input: in, Output: filepath.Join(dir, "out.jsonl"), Rejects: filepath.Join(dir, "rej.jsonl"),
		Workers: 2, MaxPlanTokens: 384, SeqContext: 1000, Logger: zerolog.Nop()}
	sum, err := Run(context.Background(), context.Background(), &fakeGen{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reasons[string(ReasonContextFull)] != 2 || sum.Reasons[string(planner.NotTerminated)] != 1 || sum.Written != 1 {
		t.Errorf("reasons %v, written %d", sum.Reasons, sum.Written)
	}
	if sum.ContextFullFit != 7000 {
		t.Errorf("context_full_fit_ctx %d, want 7000", sum.ContextFullFit)
	}
	for _, r := range lines(t, cfg.Rejects) {
		if r["id"] == "full2" && (r["reason"] != "context_full" || !strings.Contains(r["detail"].(string), "--ctx 7000") || !strings.Contains(r["detail"].(string), "384")) {
			t.Errorf("full2 reject %v", r)
		}
		// A context_full reject records the sequence it ran in, so that a
		// rerun with a larger one redoes it; the model's own rejects do not.
		if full := r["reason"] == "context_full"; full != (r["seq_ctx"] == float64(1000)) {
			t.Errorf("%s reject: seq_ctx %v", r["reason"], r["seq_ctx"])
		}
		if _, ok := r["fitContext"]; ok {
			t.Errorf("internal field written: %v", r)
		}
	}
	// With --keep-unterminated's filter a cut plan is kept, cut by the
	// context or not.
	cfg.Output, cfg.Rejects = filepath.Join(dir, "keep.jsonl"), filepath.Join(dir, "keep.rej.jsonl")
	cfg.Filter = planner.NewFilter(planner.FilterConfig{KeepUnterminated: true})
	sum, err = Run(context.Background(), context.Background(), &fakeGen{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reasons[string(ReasonContextFull)] != 0 || sum.ContextFullFit != 0 {
		t.Errorf("keep unterminated: reasons %v, fit %d", sum.Reasons, sum.ContextFullFit)
	}
}

// TestContextRoom: the room a row's own text has is the sequence's share
// less the template's tokens, the plan limit and one token.
func TestContextRoom(t *testing.T) {
	count := func(s string) (int, error) { return len(s), nil } // one token a byte
	tmpl := planner.DefaultTemplate()
	text, _ := tmpl.Render("", "")
	full, _ := planner.ChatML{}.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: text}}, true)
	fixed, room, err := ContextRoom(tmpl, planner.ChatML{}, count, 1000, 384)
	if err != nil {
		t.Fatal(err)
	}
	if fixed != len(full) || room != 1000-len(full)-384-1 {
		t.Errorf("fixed %d, room %d; want %d, %d", fixed, room, len(full), 1000-len(full)-385)
	}
	if _, _, err := ContextRoom(tmpl, planner.ChatML{}, func(string) (int, error) { return 0, errors.New("no") }, 1000, 384); err == nil {
		t.Error("tokenizer error not returned")
	}
}
