package extract

import (
	"context"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/sampling"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/remote"
)

// Local generates on the in-process continuous-batching engine.
type Local struct {
	Engine   Engine
	Chat     planner.ChatTemplater
	Sampling sampling.Options
	// SharedPrefix is the rendered start that every extraction prompt shares
	// (see SharedPrefix); with the engine's prefix cache it is computed once.
	SharedPrefix string
}

// Engine is what Local needs of the in-process engine (llama/engine's
// Engine, which local opens): generation, the context size at which a
// sequence would hold a given number of tokens (for a context_full row's
// advice), and the generated-token count for progress.
type Engine interface {
	lm.Generator
	ContextFor(perSequence int) int
	Stats() lm.Stats
}

// SharedPrefix returns the text that every extraction prompt made with tmpl
// and chat starts with: the chat header and the instruction up to the first
// row-specific placeholder. It is found by rendering with a sentinel.
func SharedPrefix(tmpl *planner.Template, chat planner.ChatTemplater) string {
	const sentinel = "⟦codeplan-row-7f3a⟧" // no NUL bytes: the C template engine would stop at them
	text, err := tmpl.Render(sentinel, sentinel)
	if err != nil {
		return ""
	}
	full, err := chat.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: text}}, true)
	if err != nil {
		return ""
	}
	i := strings.Index(full, sentinel)
	if i <= 0 {
		return ""
	}
	return full[:i]
}

// Generate implements Generator.
func (l Local) Generate(ctx context.Context, id string, msgs []planner.Message, maxTokens int) (Generation, error) {
	prompt, err := l.Chat.ApplyTemplate(msgs, true)
	if err != nil {
		return Generation{}, err
	}
	res, err := l.Engine.Generate(ctx, lm.Request{
		ID:           id,
		Ctx:          ctx,
		Sampling:     l.Sampling,
		Phases:       []lm.Phase{{Prefix: prompt, MaxTokens: maxTokens}},
		SharedPrefix: l.SharedPrefix,
	})
	if err != nil {
		return Generation{}, err
	}
	ph := res.Phases[0]
	g := Generation{Text: ph.Text, HitLimit: ph.Finish == lm.FinishLength, ContextFull: ph.ContextFull, PromptTokens: res.PromptTokens, Tokens: ph.Tokens}
	if g.ContextFull {
		// The engine stops a sequence one token before its share is full.
		g.FitContext = l.Engine.ContextFor(res.PromptTokens + maxTokens + 1)
	}
	return g, nil
}

// Remote generates on an OpenAI-compatible server (vLLM, llama.cpp's
// server, ollama, codeplan serve). Its client bounds concurrency and retries.
type Remote struct {
	Client *remote.Client
	Params remote.Params
}

// NewRemote checks that the server answers (GET /v1/models) and returns a
// Remote that asks it for a plain completion of each extraction prompt with
// the run's sampling settings and seed, so that a seeded run is as
// reproducible as the server allows. When the server is `codeplan serve`,
// whose chat endpoint would otherwise wrap the prompt in a plan phase (its
// default mode is codeplan), it asks for direct mode: the reply is then the
// extraction model's own completion and its completion tokens are the plan's.
// models are the names the server offers.
func NewRemote(ctx context.Context, client *remote.Client, s sampling.Options) (r Remote, models []string, err error) {
	infos, err := client.ModelInfos(ctx)
	if err != nil {
		return Remote{}, nil, err
	}
	seed := int64(s.Seed)
	p := remote.Params{Temperature: float64(s.Temperature), TopP: float64(s.TopP), TopK: s.TopK, MinP: float64(s.MinP),
		RepeatPenalty: float64(s.RepeatPenalty), Seed: &seed}
	for _, m := range infos {
		models = append(models, m.ID)
		if m.Codeplan() {
			p.Mode = string(planner.Direct)
		}
	}
	return Remote{Client: client, Params: p}, models, nil
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

// ContextRoom works out how many tokens a row's own text (prompt and
// response) may take before its plan can no longer reach maxPlan tokens in a
// sequence of slot tokens: fixed is what the template and chat header take
// by themselves (count tokenises), room what is left after them, the plan
// limit and the one token the engine keeps free. A row longer than room is
// rejected as context_full when its plan runs long.
func ContextRoom(tmpl *planner.Template, chat planner.ChatTemplater, count func(string) (int, error), slot, maxPlan int) (fixed, room int, err error) {
	text, err := tmpl.Render("", "")
	if err != nil {
		return 0, 0, err
	}
	full, err := chat.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: text}}, true)
	if err != nil {
		return 0, 0, err
	}
	if fixed, err = count(full); err != nil {
		return 0, 0, err
	}
	return fixed, slot - fixed - maxPlan - 1, nil
}
