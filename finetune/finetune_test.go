package finetune

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
)

var tinyPath string

func TestMain(m *testing.M) {
	p, err := tiny.DefaultPath()
	if err != nil {
		panic(err)
	}
	tinyPath = p
	os.Exit(m.Run())
}

func loadModel(t testing.TB, path string) *llama.Model { return testmodel.LoadFile(t, path) }

// quickConfig trains the tiny model hard on the six test rows, so that a
// few seconds suffice to see it memorise them.
func quickConfig(t testing.TB, dir string) Config {
	return Config{
		Data: "testdata/rows.jsonl", Out: filepath.Join(dir, "adapter.gguf"),
		Rank: 8, Alpha: 16, Epochs: 40, LR: 1e-2, Warmup: 0.1, Schedule: Cosine,
		Ctx: 256, Batch: 512, ValSplit: 0.2, Seed: 7, Threads: 1, EvalEvery: 5,
		Logger: zerolog.Nop(),
	}
}

func TestLearningRate(t *testing.T) {
	const total, warm, peak = 100, 10, 1e-3
	for _, sched := range []Schedule{Cosine, Linear, Constant} {
		prev := math.Inf(1)
		for s := 1; s <= total; s++ {
			lr := learningRate(peak, sched, s, total, warm)
			if !(lr > 0) || lr > peak*(1+1e-12) {
				t.Fatalf("%s step %d: lr %g outside (0, %g]", sched, s, lr, peak)
			}
			if s <= warm {
				if want := peak * float64(s) / warm; math.Abs(lr-want) > 1e-15 {
					t.Errorf("%s warm-up step %d: lr %g, want %g", sched, s, lr, want)
				}
				continue
			}
			if lr > prev+1e-15 {
				t.Errorf("%s step %d: lr rose from %g to %g after warm-up", sched, s, prev, lr)
			}
			prev = lr
		}
	}
	if lr := learningRate(peak, Constant, 50, total, warm); lr != peak {
		t.Errorf("constant: %g", lr)
	}
	if lr := learningRate(peak, Cosine, warm+1, total, warm); lr != peak {
		t.Errorf("cosine starts at %g, want the peak", lr)
	}
	for _, c := range []struct {
		w     float64
		total int
		want  int
	}{{0, 100, 0}, {0.05, 100, 5}, {0.05, 10, 1}, {20, 100, 20}, {500, 100, 100}} {
		if got := warmupSteps(c.w, c.total); got != c.want {
			t.Errorf("warmupSteps(%g, %d) = %d, want %d", c.w, c.total, got, c.want)
		}
	}
}

func fakeExamples(lens ...int) []Example {
	ex := make([]Example, len(lens))
	for i, n := range lens {
		ex[i] = Example{ID: string(rune('a' + i)), Tokens: make([]llama.Token, n), Prefix: n / 2}
	}
	return ex
}

func TestPlanSteps(t *testing.T) {
	ex := fakeExamples(100, 200, 50, 300, 120, 80, 90, 400)
	train := []int{0, 1, 2, 3, 4, 5, 6, 7}
	steps := planSteps(ex, train, 3, 9, 512, 2)
	again := planSteps(ex, train, 3, 9, 512, 2)
	perEpoch := map[int]map[int]int{}
	for si, s := range steps {
		if len(s.micro) == 0 || len(s.micro) > 2 {
			t.Fatalf("step %d has %d micro-batches", si, len(s.micro))
		}
		scored := 0
		for mi, mb := range s.micro {
			if mb.tokens > 512 {
				t.Errorf("micro-batch of %d tokens > 512", mb.tokens)
			}
			if len(again[si].micro[mi].examples) != len(mb.examples) {
				t.Fatalf("plan not deterministic")
			}
			for k, e := range mb.examples {
				if again[si].micro[mi].examples[k] != e {
					t.Fatalf("plan not deterministic")
				}
				if perEpoch[s.epoch] == nil {
					perEpoch[s.epoch] = map[int]int{}
				}
				perEpoch[s.epoch][e]++
			}
			scored += mb.scored
		}
		if scored != s.scored {
			t.Errorf("step %d: scored %d, micro-batches sum to %d", si, s.scored, scored)
		}
	}
	for e := 0; e < 3; e++ {
		if len(perEpoch[e]) != len(train) {
			t.Errorf("epoch %d visits %d examples, want %d", e, len(perEpoch[e]), len(train))
		}
		for i, n := range perEpoch[e] {
			if n != 1 {
				t.Errorf("epoch %d visits example %d %d times", e, i, n)
			}
		}
	}
	other := planSteps(ex, train, 3, 10, 512, 2)
	same := true
	for i := range other {
		if i >= len(steps) || len(other[i].micro[0].examples) != len(steps[i].micro[0].examples) || other[i].micro[0].examples[0] != steps[i].micro[0].examples[0] {
			same = false
		}
	}
	if same && len(other) == len(steps) {
		t.Error("another seed gave the same order")
	}
}

func TestSplitValidation(t *testing.T) {
	ex := fakeExamples(make([]int, 40)...)
	for i := range ex {
		ex[i].ID = strings.Repeat("x", i+1)
	}
	train, val := splitValidation(ex, 0.1, 1)
	if len(val) != 4 || len(train) != 36 {
		t.Fatalf("split %d/%d, want 36/4", len(train), len(val))
	}
	seen := map[int]bool{}
	for _, i := range append(append([]int(nil), train...), val...) {
		if seen[i] {
			t.Fatalf("example %d in both sets", i)
		}
		seen[i] = true
	}
	if _, v := splitValidation(ex, 0, 1); len(v) != 0 {
		t.Errorf("no split asked, got %d held out", len(v))
	}
	if tr, v := splitValidation(ex[:2], 0.01, 1); len(v) != 1 || len(tr) != 1 {
		t.Errorf("tiny split %d/%d, want 1/1", len(tr), len(v))
	}
}

func TestLoadExamplesMasking(t *testing.T) {
	m := loadModel(t, tinyPath)
	chat := planner.ChatML{}
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: chat}
	var warnings []string
	ex, st, err := LoadExamples("testdata/rows.jsonl", DataOptions{Prompter: p, Tokenizer: m, Ctx: 512,
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 6 || st.Used != 6 || st.Truncated != 0 || len(warnings) != 0 {
		t.Fatalf("%d examples, stats %+v, warnings %q", len(ex), st, warnings)
	}
	for _, e := range ex {
		_, target, err := p.TrainingExample(rowField(t, e.ID, "prompt"), rowField(t, e.ID, "plan"), rowField(t, e.ID, "response"))
		if err != nil {
			t.Fatal(err)
		}
		tt, _ := m.Tokenize(target, false, true)
		if e.Scored() != len(tt) {
			t.Errorf("row %s: %d scored tokens, target has %d", e.ID, e.Scored(), len(tt))
		}
		// the masked batch scores exactly the target tokens
		var b llama.TrainBatch
		n, err := b.Add(e.Tokens, e.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		scored := 0
		for i, l := range b.Labels {
			if l >= 0 {
				scored++
				if i < e.Prefix-1 {
					t.Errorf("row %s: prompt position %d is scored", e.ID, i)
				}
			}
		}
		if n != len(tt) || scored != len(tt) {
			t.Errorf("row %s: batch scores %d (Add says %d), want %d", e.ID, scored, n, len(tt))
		}
	}

	// a context shorter than some rows truncates them, naming each row
	warnings = nil
	ex, st, err = LoadExamples("testdata/rows.jsonl", DataOptions{Prompter: p, Tokenizer: m, Ctx: 90,
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated+st.Skipped == 0 || len(warnings) != st.Truncated+st.Skipped {
		t.Fatalf("stats %+v, %d warnings", st, len(warnings))
	}
	for _, w := range warnings {
		if !strings.Contains(w, "rows.jsonl:") || !strings.Contains(w, "row r") {
			t.Errorf("warning does not name the row: %q", w)
		}
	}
	for _, e := range ex {
		if len(e.Tokens) > 90 {
			t.Errorf("row %s: %d tokens after truncation", e.ID, len(e.Tokens))
		}
	}

	_, st, err = LoadExamples("testdata/bad.jsonl", DataOptions{Prompter: p, Tokenizer: m, Ctx: 512})
	if !errors.Is(err, ErrNoRows) || st.SkipReasons["no plan"] != 2 {
		t.Errorf("bad data: err %v, stats %+v", err, st)
	}
}

func rowField(t testing.TB, id, field string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/rows.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"id": "`+id+`"`) {
			return gjson.Get(line, field).String()
		}
	}
	t.Fatalf("no row %s", id)
	return ""
}

// TestLoadExamplesPlanFieldByMode checks that rows carrying both plan
// forms train nlplan on nl_plan and codeplan on plan without a field flag,
// that an explicit field wins, and that rows without nl_plan still use plan.
func TestLoadExamplesPlanFieldByMode(t *testing.T) {
	m := loadModel(t, tinyPath)
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	rows := `{"id":"a","prompt":"Add 2 and 3.","plan":"def solve():\n    return 2 + 3","nl_plan":"1. Add the numbers.","response":"The answer is 5."}
{"id":"b","prompt":"Add 4 and 4.","plan":"def solve():\n    return 4 + 4","response":"The answer is 8."}
`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	target := func(mode planner.Mode, field string, i int) string {
		t.Helper()
		p := planner.Prompter{Mode: mode, Format: planner.Trained, Chat: planner.ChatML{}}
		ex, _, err := LoadExamples(path, DataOptions{Prompter: p, Tokenizer: m, Ctx: 512, PlanField: field})
		if err != nil {
			t.Fatal(err)
		}
		text, err := m.Detokenize(ex[i].Tokens[ex[i].Prefix:], false, true)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	if got := target(planner.NLPlan, "", 0); !strings.Contains(got, "1. Add the numbers.") || strings.Contains(got, "def solve") {
		t.Errorf("nlplan target of a row with nl_plan: %q", got)
	}
	if got := target(planner.NLPlan, "", 1); !strings.Contains(got, "return 4 + 4") {
		t.Errorf("nlplan target of a row without nl_plan: %q", got)
	}
	if got := target(planner.NLPlan, "plan", 0); !strings.Contains(got, "return 2 + 3") {
		t.Errorf("nlplan with --plan-field plan: %q", got)
	}
	if got := target(planner.CodePlan, "", 0); !strings.Contains(got, "return 2 + 3") || strings.Contains(got, "1. Add") {
		t.Errorf("codeplan target: %q", got)
	}
}

// TestLoadExamplesExtraction checks that an extractor example is what
// `codeplan extract` shows the model (the template rendered with the row's
// prompt and response, in the chat template) followed by the plan alone,
// that rows without a plan are skipped, and that Validate wants direct mode.
func TestLoadExamplesExtraction(t *testing.T) {
	m := loadModel(t, tinyPath)
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	rows := `{"id":"a","prompt":"Add 2 and 3.","plan":"def solve():\n    return 2 + 3\n\n","response":"2 + 3 = 5.\nThe answer is 5."}
{"id":"b","prompt":"Add 4 and 4.","response":"The answer is 8."}
`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := planner.DefaultTemplate()
	chat := planner.ChatML{}
	p := planner.Prompter{Mode: planner.Direct, Format: planner.Trained, Chat: chat}
	ex, st, err := LoadExamples(path, DataOptions{Prompter: p, Tokenizer: m, Ctx: 1024, Extraction: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 1 || st.SkipReasons["no plan"] != 1 {
		t.Fatalf("%d examples, stats %+v", len(ex), st)
	}
	user, _ := tmpl.Render("Add 2 and 3.", "2 + 3 = 5.\nThe answer is 5.")
	wantPrefix, err := chat.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: user}}, true)
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := m.Detokenize(ex[0].Tokens[:ex[0].Prefix], false, true)
	target, _ := m.Detokenize(ex[0].Tokens[ex[0].Prefix:], false, true)
	if prefix != wantPrefix {
		t.Errorf("prefix %q, want the extraction prompt %q", prefix, wantPrefix)
	}
	if !strings.HasPrefix(target, "def solve():\n    return 2 + 3<|im_end|>") {
		t.Errorf("target %q, want the cleaned plan and the end of turn", target)
	}

	cfg := Config{Data: path, Out: "x.gguf", Extraction: tmpl, Mode: planner.CodePlan}.withDefaults()
	var ce *ConfigError
	if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != "Mode" {
		t.Errorf("extraction in codeplan mode: %v, want a ConfigError on Mode", err)
	}
	cfg.Mode = planner.Direct
	if err := cfg.Validate(); err != nil {
		t.Errorf("extraction in direct mode: %v", err)
	}
}
