package evaluate

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/loglik"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

// fixedScorer gives each option a fixed total log-likelihood and records
// the contexts it was asked about.
type fixedScorer struct {
	sums     map[string]float64
	mu       sync.Mutex
	contexts []string
}

func (f *fixedScorer) Choices(ctx string, conts []string) ([]lm.Scores, error) {
	f.mu.Lock()
	f.contexts = append(f.contexts, ctx)
	f.mu.Unlock()
	out := make([]lm.Scores, len(conts))
	for i, c := range conts {
		out[i] = lm.Scores{LogProbs: []float64{f.sums[c]}}
	}
	return out, nil
}

// acc picks the option with the highest total log-likelihood, acc_norm the
// highest per byte; a plan mode scores the options after its plan; items
// that are not multiple choice are still generated.
func TestLoglikChoiceScoring(t *testing.T) {
	items := []benchdata.Item{
		{ID: "mc1", Question: "Which animal is bigger?\n(A) cat (B) elephants", Gold: "B", Kind: answer.Choice, Choices: []string{"cat", "elephants"}},
		{ID: "num1", Question: "What is 2+3?", Gold: "5", Kind: answer.Number},
	}
	cfg := testConfig(t, items)
	sc := &fixedScorer{sums: map[string]float64{"cat": -6, "elephants": -9}} // per byte: -2 and -1
	cfg.Choices = sc
	gen := newScripted(items)
	st, err := Run(context.Background(), context.Background(), gen, cfg)
	if err != nil || st.Written != 6 {
		t.Fatalf("run: %v, %+v", err, st)
	}
	rows := readRows(t, cfg.Dir)
	seen := 0
	for _, r := range rows {
		if r.ItemID == "num1" {
			if r.Scoring != "" || r.ChoiceScores != nil || !r.Correct && r.Mode == planner.Direct {
				t.Errorf("generated row %+v", r)
			}
			continue
		}
		seen++
		if r.Scoring != ScoringLoglik || r.ChoiceScores == nil {
			t.Fatalf("row %s not scored by loglik: %+v", r.ID, r)
		}
		cs := r.ChoiceScores
		if r.Extracted != "A" || r.Correct || r.Output != "cat" || cs.Norm != "B" || !cs.CorrectNorm || len(cs.LogLiks) != 2 || cs.LogLiks[1] != -9 {
			t.Errorf("%s: acc pick %s (correct %v), norm %+v", r.ID, r.Extracted, r.Correct, cs)
		}
		if r.Mode.HasPlan() != (r.Plan != "") {
			t.Errorf("%s: plan %q", r.ID, r.Plan)
		}
	}
	if seen != 3 || len(sc.contexts) != 3 {
		t.Fatalf("%d loglik rows, %d scorer calls", seen, len(sc.contexts))
	}
	plans := 0
	for _, c := range sc.contexts {
		if !strings.Contains(c, ChoiceHint) {
			t.Errorf("context lacks the hint: %q", c)
		}
		if opener := planner.CodePlan.AnswerOpener(); strings.Contains(c, "Plan:\n") {
			plans++
			if !strings.HasSuffix(c, opener) && !strings.HasSuffix(c, planner.NLPlan.AnswerOpener()) {
				t.Errorf("plan-mode context does not end where the answer begins: %q", c)
			}
		}
	}
	if plans != 2 {
		t.Errorf("%d of 3 contexts carry a plan, want 2 (nlplan, codeplan)", plans)
	}
}

// With the tiny model, the options are scored for real: each row's
// log-likelihoods are negative and the picks follow them.
func TestLoglikChoiceTiny(t *testing.T) {
	txt := tinyText(t)
	items := []benchdata.Item{{ID: "mc", Question: "Pick one.\n(A) red (B) blue (C) a long green answer", Gold: "C",
		Kind: answer.Choice, Choices: []string{"red", "blue", "a long green answer"}}}
	cfg := testConfig(t, items)
	cfg.Modes = []planner.Mode{planner.Direct}
	cfg.Choices = txt
	if _, err := Run(context.Background(), context.Background(), newScripted(items), cfg); err != nil {
		t.Fatal(err)
	}
	r := readRows(t, cfg.Dir)[0]
	ll := r.ChoiceScores.LogLiks
	best := 0
	for i, v := range ll {
		if v >= 0 {
			t.Errorf("option %d log-likelihood %v", i, v)
		}
		if v > ll[best] {
			best = i
		}
	}
	if r.Extracted != string(rune('A'+best)) {
		t.Errorf("picked %s, scores %v", r.Extracted, ll)
	}
}

func tinyText(t *testing.T) *loglik.Text {
	t.Helper()
	model := testmodel.Load(t)
	ctx, err := model.NewContext(llama.ContextOptions{ContextSize: 3 * 1024, Sequences: 3, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Close() })
	txt, err := loglik.NewText(model, ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txt.Close)
	return txt
}

func readRows(t *testing.T, dir string) []Row {
	t.Helper()
	rows, err := ReadRows(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
