package local

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
)

func tinyOptions(t *testing.T) Options {
	return Options{Path: testmodel.Path(t), Threads: 1, Parallel: 2, Ctx: 1024, Batch: 256, Poll: 0, LoRAScale: 1}
}

// One Close frees everything opened on the model: the engine, the choice
// and gain scorers (their contexts and samplers), the context, the adapter
// and the model; the model's own Close would fail with ErrInUse otherwise.
func TestOneCloseFreesEverything(t *testing.T) {
	o := tinyOptions(t)
	o.LoRA = filepath.Join(t.TempDir(), "a.gguf")
	if err := tiny.WriteLoRA(o.LoRA, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 8, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	l, err := Open(o, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if m, lora := l.Names(); m != filepath.Base(o.Path) || lora != "a.gguf" {
		t.Errorf("names %q %q", m, lora)
	}
	eng, err := l.Engine(engine.Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := l.ChatTemplate()
	if _, err := l.ChoiceScorer(2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.GainScorer(Options{}); err != nil {
		t.Fatal(err)
	}
	p := planner.Prompter{Mode: planner.Direct, Format: planner.Prompted, Chat: chat}
	if _, err := eng.Generate(context.Background(), lm.Request{ID: "x", Phases: []lm.Phase{{Prefix: mustPrompt(t, p), MaxTokens: 4}}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func mustPrompt(t *testing.T, p planner.Prompter) string {
	t.Helper()
	ph, err := p.AnswerPrompt(nil, "What is 2 plus 3?", "")
	if err != nil {
		t.Fatal(err)
	}
	return ph.Text
}

// The gain scorer built on the extraction model uses its adapter: the
// adapter must change the scores, or the scorer ran without it.
func TestGainScorerUsesTheAdapter(t *testing.T) {
	lora := filepath.Join(t.TempDir(), "a.gguf")
	if err := tiny.WriteLoRA(lora, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 2, Alpha: 8, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	score := func(lora string) float64 {
		t.Helper()
		o := tinyOptions(t)
		o.LoRA = lora
		l, err := Open(o, 0, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		g, err := l.GainScorer(Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.Gain("What is 2 plus 3?", "def solve():\n    return add(2, 3)", "2 + 3 = 5. The answer is 5.")
		if err != nil {
			t.Fatal(err)
		}
		return res.WithPlan
	}
	plain, adapted := score(""), score(lora)
	if plain == adapted || plain == 0 {
		t.Errorf("log-likelihood with the plan: %v without the adapter, %v with it", plain, adapted)
	}
}

// A model file that does not load is a *FileError (bad input).
func TestOpenBadFile(t *testing.T) {
	o := tinyOptions(t)
	o.Path = filepath.Join(t.TempDir(), "none.gguf")
	_, err := Open(o, 0, zerolog.Nop())
	var fe *FileError
	if err == nil || !errors.As(err, &fe) {
		t.Errorf("missing model: %v, want a *FileError", err)
	}
}
