package server

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// checkTokenLogprobs checks one OpenAI content list: bytes spell the
// token, the token's log-probability is a probability, alternatives are
// sorted and (greedy) the sampled token is the first alternative.
func checkTokenLogprobs(t *testing.T, lps []openai.ChatCompletionTokenLogprob, top int, greedy bool) string {
	t.Helper()
	var text []byte
	for i, lp := range lps {
		for _, b := range lp.Bytes {
			text = append(text, byte(b))
		}
		if lp.Logprob > 0 || math.IsNaN(lp.Logprob) || len(lp.TopLogprobs) != top {
			t.Errorf("token %d: %+v", i, lp)
			continue
		}
		for j := 1; j < len(lp.TopLogprobs); j++ {
			if lp.TopLogprobs[j].Logprob > lp.TopLogprobs[j-1].Logprob {
				t.Errorf("token %d: alternatives not sorted: %+v", i, lp.TopLogprobs)
			}
		}
		if greedy && top > 0 && (lp.TopLogprobs[0].Token != lp.Token || lp.TopLogprobs[0].Logprob != lp.Logprob) {
			t.Errorf("greedy token %d %q (%v) is not the top alternative %+v", i, lp.Token, lp.Logprob, lp.TopLogprobs[0])
		}
	}
	return string(text)
}

func TestChatLogprobs(t *testing.T) {
	ts := startServer(t, 2, 512, nil)
	c := ts.client()
	for _, mode := range []planner.Mode{planner.Direct, planner.CodePlan} {
		p := chatParams("Name a colour.", 8)
		p.Logprobs, p.TopLogprobs = openai.Bool(true), openai.Int(3)
		resp, err := c.Chat.Completions.New(context.Background(), p, option.WithJSONSet("mode", string(mode)), option.WithJSONSet("max_plan_tokens", 6))
		if err != nil {
			t.Fatal(err)
		}
		ch := resp.Choices[0]
		text := checkTokenLogprobs(t, ch.Logprobs.Content, 3, true)
		if len(ch.Logprobs.Content) == 0 || strings.TrimSpace(text) != strings.TrimSpace(ch.Message.Content) {
			t.Errorf("%s: logprob tokens spell %q, content %q", mode, text, ch.Message.Content)
		}
		_, hasPlan := ch.Logprobs.JSON.ExtraFields["plan"]
		if hasPlan != mode.HasPlan() {
			t.Errorf("%s: plan log-probs present = %v: %s", mode, hasPlan, ch.Logprobs.RawJSON())
		}
		// Streamed, the same log-probabilities arrive with the last chunk.
		stream := c.Chat.Completions.NewStreaming(context.Background(), p, option.WithJSONSet("mode", string(mode)), option.WithJSONSet("max_plan_tokens", 6))
		var streamed []openai.ChatCompletionTokenLogprob
		for stream.Next() {
			for _, sc := range stream.Current().Choices {
				streamed = append(streamed, sc.Logprobs.Content...)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(streamed) != len(ch.Logprobs.Content) {
			t.Fatalf("%s: streamed %d token log-probs, non-streamed %d", mode, len(streamed), len(ch.Logprobs.Content))
		}
		for i := range streamed {
			if streamed[i].Token != ch.Logprobs.Content[i].Token || math.Abs(streamed[i].Logprob-ch.Logprobs.Content[i].Logprob) > 1e-6 {
				t.Errorf("%s token %d: streamed %+v, non-streamed %+v", mode, i, streamed[i], ch.Logprobs.Content[i])
			}
		}
	}
	// Without logprobs the field is null.
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("hi", 4))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Logprobs.JSON.Content.Valid() {
		t.Errorf("logprobs without asking: %s", resp.Choices[0].Logprobs.RawJSON())
	}
}

// The sampled token's log-probability is from the raw distribution, not the
// one reshaped by temperature: at temperature 2 it matches the engine's
// log-probability of the same tokens, which the engine tests check against
// the loglik scorer.
func TestChatLogprobsSampled(t *testing.T) {
	ts := startServer(t, 1, 512, nil)
	p := chatParams("Tell a story.", 10)
	p.Logprobs, p.Temperature, p.Seed = openai.Bool(true), openai.Float(2), openai.Int(11)
	c := ts.client()
	resp, err := c.Chat.Completions.New(context.Background(), p, option.WithJSONSet("mode", "direct"))
	if err != nil {
		t.Fatal(err)
	}
	lps := resp.Choices[0].Logprobs.Content
	checkTokenLogprobs(t, lps, 0, false)
	// The same request on the engine alone, with the sampler the server
	// builds from the request.
	var req chatRequest
	if err := json.Unmarshal([]byte(`{"temperature":2,"seed":11,"messages":[{"role":"user","content":"Tell a story."}]}`), &req); err != nil {
		t.Fatal(err)
	}
	in, e := parseChat(&req, planner.Direct, ts.defaults())
	if e != nil {
		t.Fatal(e)
	}
	prompt, err := planner.Prompter{Mode: planner.Direct, Format: ts.cfg.Format, Chat: ts.cfg.Chat}.AnswerPrompt(nil, in.user, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.eng.Generate(context.Background(), lm.Request{LogProbs: true, Sampling: in.params.sampling,
		Phases: []lm.Phase{{Prefix: prompt.Text, MaxTokens: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	want := res.Phases[0].LogProbs
	if len(want) != len(lps) {
		t.Fatalf("server %d tokens, engine %d", len(lps), len(want))
	}
	for i := range want {
		if math.Abs(want[i].LogProb-lps[i].Logprob) > 1e-6 {
			t.Errorf("token %d: server %v, engine %v", i, lps[i].Logprob, want[i].LogProb)
		}
	}
}

func TestCompletionLogprobs(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	c := ts.client()
	resp, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model:       openai.CompletionNewParamsModel(testModelID),
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens:   openai.Int(7),
		Temperature: openai.Float(0),
		Logprobs:    openai.Int(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	lp := ch.Logprobs
	if len(lp.Tokens) == 0 || len(lp.Tokens) != len(lp.TokenLogprobs) || len(lp.Tokens) != len(lp.TopLogprobs) || len(lp.Tokens) != len(lp.TextOffset) {
		t.Fatalf("logprobs %s", lp.RawJSON())
	}
	off := 0
	for i, tok := range lp.Tokens {
		if lp.TextOffset[i] != int64(off) || lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 2 {
			t.Errorf("token %d %q: offset %d (want %d), logprob %v, top %v", i, tok, lp.TextOffset[i], off, lp.TokenLogprobs[i], lp.TopLogprobs[i])
		}
		if best, ok := lp.TopLogprobs[i][tok]; !ok || best != lp.TokenLogprobs[i] {
			t.Errorf("greedy token %d %q is not among its top alternatives %v", i, tok, lp.TopLogprobs[i])
		}
		off += len(tok)
	}
	if strings.Join(lp.Tokens, "") != ch.Text {
		t.Errorf("tokens spell %q, text %q", strings.Join(lp.Tokens, ""), ch.Text)
	}
	code, _, body := post(t, "POST", ts.url+"/v1/completions", `{"prompt":"x","logprobs":21}`, nil)
	if code != 400 || !strings.Contains(string(body), "logprobs") {
		t.Errorf("logprobs 21: %d %s", code, body)
	}
}
