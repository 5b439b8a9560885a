package engine_test

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/loglik"
)

// Generated tokens' log-probabilities come from the raw distribution: they
// equal what the loglik scorer computes for the same tokens after the same
// prompt, even when sampling at a high temperature, and with greedy
// sampling every token is its step's top alternative.
func TestLogProbsMatchScorer(t *testing.T) {
	e := newEngine(t, 2, 2048, engine.Options{})
	prompt := prompts(1)[0]
	for _, sampling := range []llama.SamplerOptions{{}, {Temperature: 1.5, TopK: 20, Seed: 7}} {
		res, err := e.Generate(context.Background(), engine.Request{ID: "lp", LogProbs: true, TopLogProbs: 3,
			Sampling: sampling, Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 12}}})
		if err != nil {
			t.Fatal(err)
		}
		ph := res.Phases[0]
		if len(ph.LogProbs) != ph.Tokens || ph.Tokens == 0 {
			t.Fatalf("%d log-probs for %d tokens", len(ph.LogProbs), ph.Tokens)
		}
		var text []byte
		gen := make([]llama.Token, len(ph.LogProbs))
		for i, lp := range ph.LogProbs {
			text = append(text, lp.Bytes...)
			gen[i] = lp.Token
			if len(lp.Top) != 3 || lp.Top[0].LogProb < lp.Top[1].LogProb || lp.LogProb > lp.Top[0].LogProb+1e-9 {
				t.Errorf("token %d: %+v", i, lp)
			}
			if sampling.Temperature == 0 && (lp.Top[0].Token != lp.Token || lp.Top[0].LogProb != lp.LogProb) {
				t.Errorf("greedy token %d is not its step's top alternative: %+v", i, lp)
			}
		}
		if !bytes.Equal(text, []byte(ph.Text)) {
			t.Errorf("token bytes %q, text %q", text, ph.Text)
		}
		ctx, err := model.NewContext(llama.ContextOptions{ContextSize: 1024, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := loglik.NewScorer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ptoks, _ := model.Tokenize(prompt, true, true)
		want, err := sc.Score([]loglik.Request{{Context: ptoks, Continuation: gen}})
		sc.Close()
		ctx.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, lp := range ph.LogProbs {
			if math.Abs(lp.LogProb-want[0].LogProbs[i]) > 1e-3 {
				t.Errorf("temperature %v token %d: engine %.5f, scorer %.5f", sampling.Temperature, i, lp.LogProb, want[0].LogProbs[i])
			}
		}
	}
}

// A stop string cuts the text; tokens from the cut on have no entry.
func TestLogProbsStopAtString(t *testing.T) {
	e := newEngine(t, 1, 1024, engine.Options{})
	prompt := prompts(1)[0]
	full, err := e.Generate(context.Background(), engine.Request{LogProbs: true, Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 16}}})
	if err != nil {
		t.Fatal(err)
	}
	lps := full.Phases[0].LogProbs
	if len(lps) < 6 {
		t.Skipf("tiny model stopped after %d tokens", len(lps))
	}
	stop := string(lps[4].Bytes) // stop at the 5th token's text
	var before []byte
	for _, lp := range lps[:4] {
		before = append(before, lp.Bytes...)
	}
	if bytes.Contains(before, []byte(stop)) || stop == "" {
		t.Skipf("the 5th token's text %q occurs earlier", stop)
	}
	res, err := e.Generate(context.Background(), engine.Request{LogProbs: true, Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 16, Stop: []string{stop}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Phases[0].LogProbs; len(got) != 4 || res.Phases[0].Text != string(before) {
		t.Errorf("stopped at %q: %d log-probs, text %q (want 4, %q)", stop, len(got), res.Phases[0].Text, before)
	}
	if _, err := e.Generate(context.Background(), engine.Request{LogProbs: true, TopLogProbs: 21, Phases: []engine.Phase{{Prefix: prompt, MaxTokens: 2}}}); err == nil {
		t.Error("21 top log-probs accepted")
	}
}
