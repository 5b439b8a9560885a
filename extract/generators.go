package extract

import (
	"context"

	"github.com/codeplan-dev/codeplan/engine"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/remote"
)

// Local generates on the in-process continuous-batching engine.
type Local struct {
	Engine   *engine.Engine
	Chat     planner.ChatTemplater
	Sampling llama.SamplerOptions
}

// Generate implements Generator.
func (l Local) Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	prompt, err := l.Chat.ApplyTemplate(msgs, true)
	if err != nil {
		return Generation{}, err
	}
	res, err := l.Engine.Generate(ctx, engine.Request{
		ID:       id,
		Ctx:      ctx,
		Sampling: l.Sampling,
		Phases:   []engine.Phase{{Prefix: prompt, MaxTokens: maxTokens}},
	})
	if err != nil {
		return Generation{}, err
	}
	ph := res.Phases[0]
	return Generation{Text: ph.Text, HitLimit: ph.Finish == engine.FinishLength, PromptTokens: res.PromptTokens, Tokens: ph.Tokens}, nil
}

// Remote generates on an OpenAI-compatible server (vLLM, llama.cpp's
// server, ollama, codeplan serve). Its client bounds concurrency and retries.
type Remote struct {
	Client *remote.Client
	Params remote.Params
}

// Generate implements Generator.
func (r Remote) Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	rm := make([]remote.Message, len(msgs))
	for i, m := range msgs {
		rm[i] = remote.Message{Role: m.Role, Content: m.Content}
	}
	p := r.Params
	p.MaxTokens = maxTokens
	c, err := r.Client.Chat(ctx, rm, p)
	if err != nil {
		return Generation{}, err
	}
	return Generation{Text: c.Text, HitLimit: c.FinishReason == "length", PromptTokens: c.PromptTokens, Tokens: c.CompletionTokens}, nil
}
