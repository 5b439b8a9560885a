package synth_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/synth"
)

var allSteps = []int{1, 2, 3, 4, 5, 6}

func writeRows(t *testing.T, rows []synth.Row) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSynthRowsAnswerAndPlans checks, for every kind and k, that eval's
// loader reads the rows with the right kind, steps and user message, that
// the worked response scores as correct against the gold answer, and that
// the code plan passes the extraction filters and the trained format.
func TestSynthRowsAnswerAndPlans(t *testing.T) {
	rows, err := synth.Rows(synth.RowsOptions{Seed: 11, N: 12, Steps: allSteps, Kinds: synth.Kinds})
	if err != nil {
		t.Fatal(err)
	}
	if want := 12 * len(allSteps) * len(synth.Kinds); len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	items, err := benchdata.Load(writeRows(t, rows), benchdata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(rows) {
		t.Fatalf("loader read %d items of %d rows", len(items), len(rows))
	}
	filter := planner.NewFilter(planner.FilterConfig{})
	cells := map[string]int{}
	for i, r := range rows {
		it := items[i]
		cells[r.Kind+"/"+string(rune('0'+r.K))]++
		if it.ID != r.ID || it.Gold != r.Answer || it.Kind != r.AnswerKind || it.Steps != r.K {
			t.Fatalf("%s: loaded as id %q gold %q kind %q steps %d; row has %q %q %q %d",
				r.ID, it.ID, it.Gold, it.Kind, it.Steps, r.ID, r.Answer, r.AnswerKind, r.K)
		}
		if got := planner.UserMessage(it.Question, it.Kind); got != r.Prompt {
			t.Fatalf("%s: eval would send %q, training prompt is %q", r.ID, got, r.Prompt)
		}
		wantTask := r.Kind
		if r.Kind == string(synth.String) {
			wantTask = "text"
		}
		if got := evaluate.Task(it); got != wantTask {
			t.Fatalf("%s: report group %q, want %q", r.ID, got, wantTask)
		}
		extracted, ok, _ := evaluate.Score(it, r.Response)
		if !ok {
			t.Fatalf("%s: response scores wrong (extracted %q, gold %q):\n%s", r.ID, extracted, r.Answer, r.Response)
		}
		out := "Plan:\n```python\n" + r.Plan + "\n```\n"
		plan, reason := filter.Check(planner.Candidate{Output: out, Prompt: r.Prompt, Response: r.Response})
		if reason != planner.OK {
			t.Fatalf("%s: plan rejected (%s):\n%s", r.ID, reason, r.Plan)
		}
		if plan != r.Plan {
			t.Fatalf("%s: FindCode returned\n%s\nwant the plan unchanged\n%s", r.ID, plan, r.Plan)
		}
		// Unfenced, as an extractor model may write it, the plan is found too.
		if plan, ok := planner.FindCode(r.Plan); !ok || plan != r.Plan {
			t.Fatalf("%s: unfenced plan not found whole: %q", r.ID, plan)
		}
		for _, m := range planner.Modes() {
			p := r.Plan
			if m == planner.NLPlan {
				p = r.NLPlan
			}
			text, err := planner.AssistantText(m, p, r.Response)
			if err != nil {
				t.Fatalf("%s: %s training text: %v", r.ID, m, err)
			}
			gotPlan, answerText, ok := planner.SplitOutput(m, text)
			if !ok || answerText != r.Response || (m.HasPlan() && gotPlan != p) {
				t.Fatalf("%s: %s text does not split back into plan and response", r.ID, m)
			}
		}
		// A start, one sentence per step and a final one; a string
		// problem whose last step counts a letter ends with that step.
		want := r.K + 2
		if strings.Contains(r.Plan, "return s.count(") {
			want = r.K + 1
		}
		if n := strings.Count(r.NLPlan, "\n") + 1; n != want {
			t.Fatalf("%s: nl_plan has %d sentences, want %d", r.ID, n, want)
		}
		// The plan names the steps but does not give the answer away.
		if strings.Contains(r.Plan, "The answer") || strings.Contains(r.NLPlan, "The answer") {
			t.Fatalf("%s: plan states the answer", r.ID)
		}
	}
	for _, kind := range synth.Kinds {
		for _, k := range allSteps {
			if n := cells[string(kind)+"/"+string(rune('0'+k))]; n != 12 {
				t.Fatalf("cell %s k=%d has %d rows, want 12", kind, k, n)
			}
		}
	}
}

// TestSynthRowsDeterministic checks that the seed alone fixes the rows and
// that another seed changes them.
func TestSynthRowsDeterministic(t *testing.T) {
	opts := synth.RowsOptions{Seed: 5, N: 4, Steps: allSteps, Kinds: synth.Kinds}
	a, err := synth.Rows(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := synth.Rows(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different rows")
	}
	opts.Seed = 6
	c, err := synth.Rows(opts)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range a {
		if a[i].Prompt == c[i].Prompt {
			same++
		}
	}
	if same > len(a)/4 {
		t.Fatalf("seeds 5 and 6 share %d of %d prompts", same, len(a))
	}
}

// TestSynthRowsExclude checks that splits made with Exclude share no
// prompt even where the prompt space is small (truth k=1), that no prompt
// repeats inside a set, and that an exhausted cell is an error.
func TestSynthRowsExclude(t *testing.T) {
	kinds := []synth.Kind{synth.Truth, synth.String}
	train, err := synth.Rows(synth.RowsOptions{Seed: 1, N: 300, Steps: []int{1}, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	exclude := map[string]bool{}
	var trainPrompts []string
	for _, r := range train {
		if exclude[r.Prompt] {
			t.Fatalf("prompt repeated inside one set: %q", r.Prompt)
		}
		exclude[r.Prompt] = true
		trainPrompts = append(trainPrompts, r.Prompt)
	}
	// Without exclusion another seed collides with the training set...
	free, err := synth.Rows(synth.RowsOptions{Seed: 2, N: 300, Steps: []int{1}, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	var freePrompts []string
	for _, r := range free {
		freePrompts = append(freePrompts, r.Prompt)
	}
	if len(synth.SharedPrompts(trainPrompts, freePrompts)) == 0 {
		t.Fatal("expected collisions between seeds at k=1 without exclusion; the test would prove nothing")
	}
	// ...and with it, it does not.
	test, err := synth.Rows(synth.RowsOptions{Seed: 2, N: 300, Steps: []int{1}, Kinds: kinds, Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	var testPrompts []string
	for _, r := range test {
		testPrompts = append(testPrompts, r.Prompt)
	}
	if len(test) != len(train) {
		t.Fatalf("test set has %d rows, want %d", len(test), len(train))
	}
	if shared := synth.SharedPrompts(trainPrompts, testPrompts); len(shared) > 0 {
		t.Fatalf("%d prompts shared despite Exclude, e.g. %q", len(shared), shared[0])
	}
	_, err = synth.Rows(synth.RowsOptions{Seed: 3, N: 100000, Steps: []int{1}, Kinds: []synth.Kind{synth.String}, MaxTries: 1})
	if err == nil || !strings.Contains(err.Error(), "distinct prompts") {
		t.Fatalf("exhausted cell: err = %v, want a distinct-prompts error", err)
	}
}
