package inference_test

import (
	"context"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

var model *llama.Model

func TestMain(m *testing.M) { testmodel.Main(m, &model) }

func TestRequestPhases(t *testing.T) {
	chat, ok := chattemplate.For(model)
	if !ok {
		t.Fatal("tiny model's template not supported")
	}
	s := inference.Settings{MaxPlanTokens: 7, MaxTokens: 9}
	for _, mode := range planner.Modes() {
		p := planner.Prompter{Mode: mode, Format: planner.Trained, Chat: chat}
		req, err := inference.Request(p, s, nil, "What is 2+3?", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !mode.HasPlan() {
			want, _ := p.AnswerPrompt(nil, "What is 2+3?", "")
			if len(req.Phases) != 1 || req.Phases[0].Prefix != want.Text || req.Phases[0].MaxTokens != 9 {
				t.Errorf("%s: phases %+v", mode, req.Phases)
			}
			continue
		}
		plan, _ := p.PlanPrompt(nil, "What is 2+3?")
		if len(req.Phases) != 2 || req.Phases[0].Prefix != plan.Text || req.Phases[0].MaxTokens != 7 || req.Phases[1].MaxTokens != 9 {
			t.Fatalf("%s: phases %+v", mode, req.Phases)
		}
		// Phase 1 text + a plan + phase 2 prefix must be exactly the
		// planner's answer prompt for that plan: what finetune trains on.
		ans, err := p.AnswerPrompt(nil, "What is 2+3?", "x = add(2, 3)")
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Phases[0].Prefix + "x = add(2, 3)" + req.Phases[1].Prefix; got != ans.Text {
			t.Errorf("%s: two-phase text\n%q\nwant\n%q", mode, got, ans.Text)
		}
	}
}

func TestRunnerAnswersInEveryMode(t *testing.T) {
	lctx, err := model.NewContext(llama.ContextOptions{ContextSize: 2048, Sequences: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	e, err := engine.New(lctx, engine.Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	chat, _ := chattemplate.For(model)
	for _, mode := range planner.Modes() {
		r := inference.Runner{Engine: e, Prompter: planner.Prompter{Mode: mode, Format: planner.Prompted, Chat: chat},
			Settings: inference.Settings{MaxPlanTokens: 12, MaxTokens: 10}}
		var streamed strings.Builder
		var phases []string
		a, err := r.Answer(context.Background(), []planner.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}, "Plan a trip", func(phase, text string) {
			streamed.WriteString(text)
			if len(phases) == 0 || phases[len(phases)-1] != phase {
				phases = append(phases, phase)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if a.Mode != mode || a.AnswerTokens == 0 || a.PromptTokens == 0 || a.Finish == "" {
			t.Errorf("%s: %+v", mode, a)
		}
		if mode.HasPlan() {
			if a.PlanTokens == 0 || a.PlanFinish == "" || len(phases) != 2 || phases[0] != "plan" {
				t.Errorf("%s: plan %q (%d tokens, finish %q), streamed phases %v", mode, a.Plan, a.PlanTokens, a.PlanFinish, phases)
			}
		} else if a.Plan != "" || a.PlanTokens != 0 || len(phases) != 1 || phases[0] != "answer" {
			t.Errorf("direct mode produced a plan: %+v %v", a, phases)
		}
	}
}

func TestFromResult(t *testing.T) {
	r := lm.Result{PromptTokens: 5, Phases: []lm.PhaseOutput{
		{Text: "step_one()  \n\n", Tokens: 4, Finish: lm.FinishStop},
		{Text: "  The answer is 4.\n", Tokens: 6, Finish: lm.FinishStop},
	}}
	a := inference.FromResult(planner.CodePlan, r)
	if a.Plan != "step_one()" || a.Answer != "The answer is 4." || a.PlanTokens != 4 || a.AnswerTokens != 6 || a.PlanFinish != "stop" {
		t.Errorf("codeplan: %+v", a)
	}
	d := inference.FromResult(planner.Direct, lm.Result{Phases: []lm.PhaseOutput{{Text: "4", Tokens: 1, Finish: lm.FinishLength}}})
	if d.Plan != "" || d.Answer != "4" || d.Finish != "length" {
		t.Errorf("direct: %+v", d)
	}
}

// TestCutByContext: a phase cut by a full context is marked context_full
// (not length) in the phase it happened in and the ones after it, Need is
// the prefixes plus every phase's limit plus one, and a result cut by no
// context is left alone.
func TestCutByContext(t *testing.T) {
	req := lm.Request{Phases: []lm.Phase{{MaxTokens: 100}, {MaxTokens: 400}}}
	planCut := lm.Result{PromptTokens: 500, Phases: []lm.PhaseOutput{
		{Text: "step()", Tokens: 20, Finish: lm.FinishLength, ContextFull: true},
		{Finish: lm.FinishLength, ContextFull: true},
	}}
	a := inference.FromResult(planner.CodePlan, planCut)
	cut, ok := inference.CutByContext(req, planCut, &a)
	if !ok || a.PlanFinish != inference.FinishContextFull || a.Finish != inference.FinishContextFull ||
		cut.Phase != "plan" || cut.Limit != 100 || cut.Need != 1001 || cut.Generated != 20 || cut.PromptTokens != 500 {
		t.Errorf("plan cut: %+v %v, answer %+v", cut, ok, a)
	}
	if d := cut.Detail(768, 1001); d != "context_full: the row's share of the context (768 tokens) filled after 500 prompt and 20 generated tokens, before the plan reached its limit of 100 tokens: --ctx 1001 would fit it" {
		t.Errorf("detail %q", d)
	}
	if d := cut.Detail(0, 0); !strings.HasSuffix(d, "raise --ctx or lower --parallel") || strings.Contains(d, "(0 tokens)") {
		t.Errorf("detail without sizes %q", d)
	}
	answerCut := lm.Result{PromptTokens: 500, Phases: []lm.PhaseOutput{
		{Tokens: 100, Finish: lm.FinishLength}, {Tokens: 30, Finish: lm.FinishLength, ContextFull: true},
	}}
	a = inference.FromResult(planner.CodePlan, answerCut)
	if cut, ok := inference.CutByContext(req, answerCut, &a); !ok || a.PlanFinish != "length" || a.Finish != inference.FinishContextFull || cut.Phase != "answer" || cut.Limit != 400 {
		t.Errorf("answer cut: %+v %v, answer %+v", cut, ok, a)
	}
	direct := lm.Request{Phases: []lm.Phase{{MaxTokens: 50}}}
	directCut := lm.Result{PromptTokens: 90, Phases: []lm.PhaseOutput{{Tokens: 10, Finish: lm.FinishLength, ContextFull: true}}}
	a = inference.FromResult(planner.Direct, directCut)
	if cut, ok := inference.CutByContext(direct, directCut, &a); !ok || a.Finish != inference.FinishContextFull || cut.Phase != "answer" || cut.Need != 141 {
		t.Errorf("direct cut: %+v %v, answer %+v", cut, ok, a)
	}
	limit := lm.Result{Phases: []lm.PhaseOutput{{Tokens: 50, Finish: lm.FinishLength}}}
	a = inference.FromResult(planner.Direct, limit)
	if _, ok := inference.CutByContext(direct, limit, &a); ok || a.Finish != "length" {
		t.Errorf("a phase at its own limit reported as cut by the context: %+v", a)
	}
}
