package evaluate

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

// TestRunOnTinyModel runs a small evaluation on the real engine with the
// random tiny model: its answers are noise, so this checks the mechanics
// (two-phase requests, token counts, finish reasons, files), not accuracy.
func TestRunOnTinyModel(t *testing.T) {
	model := testmodel.Load(t)
	const parallel = 3
	lctx, err := model.NewContext(llama.ContextOptions{ContextSize: parallel * 2048, Sequences: parallel, BatchSize: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	eng, err := engine.New(lctx, engine.Options{Parallel: parallel})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	chat, _ := chattemplate.For(model)
	loaded, err := LoadItems(Source{Bench: "synth", Steps: []int{1}, PerCell: 1})
	if err != nil {
		t.Fatal(err)
	}
	items := loaded.Items
	cfg := testConfig(t, items)
	cfg.Prompter.Chat = chat
	cfg.Settings = inference.Settings{MaxPlanTokens: 6, MaxTokens: 6}
	cfg.Workers = eng.Parallel()
	st, err := Run(context.Background(), context.Background(), eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 15 || st.Failed != 0 || st.Errors != 0 || st.Tokens == 0 {
		t.Fatalf("stats %+v", st)
	}
	rows, err := ReadRows(filepath.Join(cfg.Dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.PromptTokens < 50 || r.AnswerTokens == 0 || r.AnswerTokens > 6 || r.Seconds <= 0 ||
			(r.Finish != "stop" && r.Finish != "length") {
			t.Errorf("row %+v", r)
		}
		if r.Mode.HasPlan() != (r.PlanFinish != "") || r.PlanTokens > 6 {
			t.Errorf("%s: plan finish %q, %d plan tokens", r.ID, r.PlanFinish, r.PlanTokens)
		}
	}
	perMode := map[planner.Mode]int{}
	for _, r := range rows {
		perMode[r.Mode]++
	}
	for _, m := range planner.Modes() {
		if perMode[m] != 5 {
			t.Errorf("%d rows for %s, want 5", perMode[m], m)
		}
	}
}
