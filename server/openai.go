package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/sampling"
	"github.com/codeplan-dev/codeplan/planner"
)

// This file holds the OpenAI wire format: the request bodies the server
// accepts, their validation into engine settings, and the response shapes.
// Only the fields the server honours are decoded; unknown fields are
// ignored, as OpenAI-compatible servers commonly do, so that clients sending
// optional extras keep working.

// maxStops bounds the stop strings of one request: each one is checked
// after every generated token.
const maxStops = 16

// samplingFields are the OpenAI sampling parameters shared by both
// endpoints, plus llama.cpp's usual extras (top_k, min_p, repeat_penalty).
type samplingFields struct {
	Temperature      *float64  `json:"temperature"`
	TopP             *float64  `json:"top_p"`
	TopK             *int      `json:"top_k"`
	MinP             *float64  `json:"min_p"`
	RepeatPenalty    *float64  `json:"repeat_penalty"`
	FrequencyPenalty *float64  `json:"frequency_penalty"`
	PresencePenalty  *float64  `json:"presence_penalty"`
	Seed             *int64    `json:"seed"`
	Stop             stopList  `json:"stop"`
	N                *int      `json:"n"`
	Stream           bool      `json:"stream"`
	StreamOptions    streamOpt `json:"stream_options"`
}

// streamOpt is stream_options; only include_usage has a meaning here.
type streamOpt struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessageIn `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	// Mode and MaxPlanTokens are codeplan's extensions.
	Mode          *string         `json:"mode"`
	MaxPlanTokens *int            `json:"max_plan_tokens"`
	Logprobs      *bool           `json:"logprobs"`
	TopLogprobs   *int            `json:"top_logprobs"`
	Tools         json.RawMessage `json:"tools"`
	samplingFields
}

// chatMessageIn is one input message; content is a string, an array of
// text parts, or null (an assistant turn that only called tools).
type chatMessageIn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// completionRequest is the body of POST /v1/completions.
type completionRequest struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int            `json:"max_tokens"`
	Echo      bool            `json:"echo"`
	Logprobs  *int            `json:"logprobs"`
	BestOf    *int            `json:"best_of"`
	Suffix    *string         `json:"suffix"`
	samplingFields
}

// stopList is OpenAI's stop: null, one string or an array of strings.
type stopList []string

// UnmarshalJSON implements json.Unmarshaler.
func (s *stopList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// genParams are a request's validated generation settings.
type genParams struct {
	maxTokens int
	maxPlan   int
	sampling  sampling.Options
	stops     []string
	stream    bool
	usage     bool // stream_options.include_usage
}

// defaults are the server-wide values a request may override.
type defaults struct {
	maxTokens, maxPlan int
	temperature        float64
}

// params validates the shared fields against OpenAI's ranges.
func (f *samplingFields) params(d defaults) (genParams, *apiError) {
	p := genParams{maxTokens: d.maxTokens, maxPlan: d.maxPlan, stream: f.Stream, usage: f.StreamOptions.IncludeUsage}
	if f.N != nil && *f.N != 1 {
		return p, badRequest("n", "n = %d is not supported: this server returns exactly one choice (n = 1)", *f.N)
	}
	temp := d.temperature
	if f.Temperature != nil {
		temp = *f.Temperature
	}
	if temp < 0 || temp > 2 {
		return p, badRequest("temperature", "temperature %g is out of range: want 0..2 (0 = greedy)", temp)
	}
	p.sampling.Temperature = float32(temp)
	if v := f.TopP; v != nil {
		if *v < 0 || *v > 1 {
			return p, badRequest("top_p", "top_p %g is out of range: want 0..1", *v)
		}
		p.sampling.TopP = float32(*v)
	}
	if v := f.TopK; v != nil {
		if *v < 0 {
			return p, badRequest("top_k", "top_k %d is out of range: want >= 0 (0 = off)", *v)
		}
		p.sampling.TopK = *v
	}
	if v := f.MinP; v != nil {
		if *v < 0 || *v > 1 {
			return p, badRequest("min_p", "min_p %g is out of range: want 0..1", *v)
		}
		p.sampling.MinP = float32(*v)
	}
	if v := f.RepeatPenalty; v != nil {
		if *v < 0 {
			return p, badRequest("repeat_penalty", "repeat_penalty %g is out of range: want >= 0", *v)
		}
		p.sampling.RepeatPenalty = float32(*v)
	}
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"frequency_penalty", f.FrequencyPenalty, &p.sampling.FrequencyPenalty}, {"presence_penalty", f.PresencePenalty, &p.sampling.PresencePenalty}} {
		if pen.v == nil {
			continue
		}
		if *pen.v < -2 || *pen.v > 2 {
			return p, badRequest(pen.name, "%s %g is out of range: want -2..2", pen.name, *pen.v)
		}
		*pen.dst = float32(*pen.v)
	}
	// The library's check covers what the ranges above do not (top_k past
	// int32, a penalty that overflows float32), so that no value can reach
	// llama.cpp's samplers unchecked.
	if err := p.sampling.Validate(); err != nil {
		var se *sampling.Error
		if errors.As(err, &se) {
			name := samplingJSONNames[se.Option]
			return p, badRequest(name, "%s is %g, want %s", name, se.Value, se.Want)
		}
		return p, badRequest("", "%v", err)
	}
	if f.Seed != nil {
		p.sampling.Seed = uint32(*f.Seed)
	} else {
		// Without a seed, repeated requests should differ, as with OpenAI;
		// the sampler's fixed default would make them identical.
		p.sampling.Seed = rand.Uint32()
	}
	if len(f.Stop) > maxStops {
		return p, badRequest("stop", "%d stop strings given, at most %d are allowed", len(f.Stop), maxStops)
	}
	for _, s := range f.Stop {
		if s != "" {
			p.stops = append(p.stops, s)
		}
	}
	return p, nil
}

// samplingJSONNames maps sampling.Options fields to request fields.
var samplingJSONNames = map[string]string{
	"Temperature": "temperature", "TopP": "top_p", "TopK": "top_k", "MinP": "min_p",
	"RepeatPenalty": "repeat_penalty", "FrequencyPenalty": "frequency_penalty",
	"PresencePenalty": "presence_penalty", "RepeatLastN": "repeat_last_n",
}

// tokenLimit validates an optional token limit field.
func tokenLimit(param string, v *int, dflt int) (int, *apiError) {
	if v == nil {
		return dflt, nil
	}
	if *v <= 0 {
		return 0, badRequest(param, "%s must be a positive number of tokens, got %d", param, *v)
	}
	return *v, nil
}

// chatInput is a validated chat request: the mode, the conversation split
// into history and the new user turn, and the generation settings.
type chatInput struct {
	mode    planner.Mode
	history []planner.Message
	user    string
	params  genParams
	// logprobs and topLogprobs are OpenAI's logprobs and top_logprobs.
	logprobs    bool
	topLogprobs int
}

// parseChat validates a chat request. dflt is the server's --mode.
func parseChat(req *chatRequest, dflt planner.Mode, d defaults) (chatInput, *apiError) {
	in := chatInput{mode: dflt}
	if req.Mode != nil {
		m, err := planner.ParseMode(*req.Mode)
		if err != nil {
			return in, badRequest("mode", "mode %q is not valid: want direct, nlplan or codeplan", *req.Mode)
		}
		in.mode = m
	}
	if len(req.Tools) > 0 && !bytes.Equal(bytes.TrimSpace(req.Tools), []byte("null")) && !bytes.Equal(bytes.TrimSpace(req.Tools), []byte("[]")) {
		return in, badRequest("tools", "tools are not supported by this server")
	}
	if in.logprobs = req.Logprobs != nil && *req.Logprobs; req.TopLogprobs != nil {
		if !in.logprobs {
			return in, badRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		if *req.TopLogprobs < 0 || *req.TopLogprobs > lm.MaxTopLogProbs {
			return in, badRequest("top_logprobs", "top_logprobs %d is out of range: want 0..%d", *req.TopLogprobs, lm.MaxTopLogProbs)
		}
		in.topLogprobs = *req.TopLogprobs
	}
	if len(req.Messages) == 0 {
		return in, badRequest("messages", "messages is missing or empty: send at least one user message")
	}
	var p *apiError
	in.params, p = req.params(d)
	if p != nil {
		return in, p
	}
	limit := req.MaxTokens
	param := "max_tokens"
	if req.MaxCompletionTokens != nil {
		limit, param = req.MaxCompletionTokens, "max_completion_tokens"
	}
	if in.params.maxTokens, p = tokenLimit(param, limit, d.maxTokens); p != nil {
		return in, p
	}
	if in.params.maxPlan, p = tokenLimit("max_plan_tokens", req.MaxPlanTokens, d.maxPlan); p != nil {
		return in, p
	}
	msgs := make([]planner.Message, len(req.Messages))
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role := strings.ToLower(strings.TrimSpace(m.Role))
		switch role {
		case "developer": // OpenAI's newer name for the system role
			role = planner.RoleSystem
		case planner.RoleSystem, planner.RoleUser, planner.RoleAssistant:
		case "":
			return in, badRequest(param+".role", "%s has no role: want system, user or assistant", param)
		default:
			return in, badRequest(param+".role", "%s has role %q: only system, developer, user and assistant are supported", param, m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return in, badRequest(param+".content", "%s: %v", param, err)
		}
		msgs[i] = planner.Message{Role: role, Content: text}
	}
	last := msgs[len(msgs)-1]
	if last.Role != planner.RoleUser {
		return in, badRequest(fmt.Sprintf("messages[%d].role", len(msgs)-1), "the last message must be from the user, got %q", last.Role)
	}
	in.history, in.user = msgs[:len(msgs)-1], last.Content
	return in, nil
}

// messageText reads a message's content: a string, an array of text parts
// (joined by newlines) or null.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf("content parts: %v", err)
		}
		texts := make([]string, 0, len(parts))
		for i, p := range parts {
			if p.Type != "text" && p.Type != "input_text" {
				return "", fmt.Errorf("content part %d has type %q: only text parts are supported", i, p.Type)
			}
			if p.Text == nil {
				return "", fmt.Errorf("content part %d has no text", i)
			}
			texts = append(texts, *p.Text)
		}
		return strings.Join(texts, "\n"), nil
	}
	return "", errors.New("content must be a string or an array of text parts")
}

// completionInput is a validated completions request.
type completionInput struct {
	prompt      string
	params      genParams
	logprobs    bool
	topLogprobs int
}

// parseCompletion validates a completions request.
func parseCompletion(req *completionRequest, d defaults) (completionInput, *apiError) {
	var in completionInput
	if req.Echo {
		return in, badRequest("echo", "echo is not supported by this server")
	}
	if req.Logprobs != nil {
		// The legacy API's logprobs is the number of alternatives per token
		// (OpenAI allows up to 5; llama.cpp's server up to 20, as here).
		if *req.Logprobs < 0 || *req.Logprobs > lm.MaxTopLogProbs {
			return in, badRequest("logprobs", "logprobs %d is out of range: want 0..%d", *req.Logprobs, lm.MaxTopLogProbs)
		}
		in.logprobs, in.topLogprobs = true, *req.Logprobs
	}
	if req.BestOf != nil && *req.BestOf != 1 {
		return in, badRequest("best_of", "best_of = %d is not supported: want 1", *req.BestOf)
	}
	if req.Suffix != nil && *req.Suffix != "" {
		return in, badRequest("suffix", "suffix is not supported by this server")
	}
	raw := bytes.TrimSpace(req.Prompt)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return in, badRequest("prompt", "prompt is missing")
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &in.prompt); err != nil {
			return in, badRequest("prompt", "prompt: %v", err)
		}
	case raw[0] == '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return in, badRequest("prompt", "prompt must be a string or an array of one string (token arrays are not supported)")
		}
		if len(list) != 1 {
			return in, badRequest("prompt", "prompt is an array of %d strings: only one prompt per request is supported", len(list))
		}
		in.prompt = list[0]
	default:
		return in, badRequest("prompt", "prompt must be a string")
	}
	if in.prompt == "" {
		return in, badRequest("prompt", "prompt is empty")
	}
	var p *apiError
	if in.params, p = req.params(d); p != nil {
		return in, p
	}
	if in.params.maxTokens, p = tokenLimit("max_tokens", req.MaxTokens, d.maxTokens); p != nil {
		return in, p
	}
	return in, nil
}

// usage is OpenAI's token accounting; plan_tokens is codeplan's addition
// (the part of completion_tokens spent on the plan).
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	PlanTokens       int `json:"plan_tokens,omitempty"`
}

// chatResponse is a non-streaming chat completion.
type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Mode    planner.Mode `json:"mode"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

type chatChoice struct {
	Index        int            `json:"index"`
	Message      chatMessageOut `json:"message"`
	FinishReason string         `json:"finish_reason"`
	Logprobs     *chatLogprobs  `json:"logprobs"`
}

// chatMessageOut is the assistant message; Plan is absent (not empty) in
// direct mode so that clients can tell "no plan asked" from "empty plan".
type chatMessageOut struct {
	Role             string  `json:"role"`
	Content          string  `json:"content"`
	Plan             *string `json:"plan,omitempty"`
	PlanFinishReason *string `json:"plan_finish_reason,omitempty"`
}

// chatChunk is one server-sent event of a streaming chat completion.
type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Mode    planner.Mode  `json:"mode"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index            int           `json:"index"`
	Delta            chunkDelta    `json:"delta"`
	FinishReason     *string       `json:"finish_reason"`
	PlanFinishReason *string       `json:"plan_finish_reason,omitempty"`
	Logprobs         *chatLogprobs `json:"logprobs"`
}

// chunkDelta carries plan text in Plan and answer text in Content.
type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
	Plan    *string `json:"plan,omitempty"`
}

// completionResponse is a /v1/completions answer, streamed or not (a
// streamed chunk has the same shape with a text delta and no usage).
type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type completionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	FinishReason *string             `json:"finish_reason"`
	Logprobs     *completionLogprobs `json:"logprobs"`
}

// modelList is the answer of GET /v1/models.
type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// chatLogprobs is a chat choice's logprobs: one entry per token of the
// message content. Plan is codeplan's addition: the plan's tokens.
type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
	Plan    []tokenLogprob `json:"plan,omitempty"`
}

// tokenLogprob is one token of chatLogprobs.
type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

// topLogprob is one alternative at a step.
type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// completionLogprobs is the legacy completions API's logprobs object.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// byteList is OpenAI's bytes field: the token's UTF-8 bytes as integers
// (a token may hold part of a character, which its string cannot show).
func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// chatLogprobsOf converts the engine's per-token log-probabilities.
func chatLogprobsOf(lps []lm.TokenLogProb) []tokenLogprob {
	out := make([]tokenLogprob, 0, len(lps))
	for _, lp := range lps {
		t := tokenLogprob{Token: string(lp.Bytes), Logprob: lp.LogProb, Bytes: byteList(lp.Bytes), TopLogprobs: []topLogprob{}}
		for _, a := range lp.Top {
			t.TopLogprobs = append(t.TopLogprobs, topLogprob{Token: string(a.Bytes), Logprob: a.LogProb, Bytes: byteList(a.Bytes)})
		}
		out = append(out, t)
	}
	return out
}

// completionLogprobsOf converts them for the legacy API; text offsets count
// bytes from the start of the completion.
func completionLogprobsOf(lps []lm.TokenLogProb) *completionLogprobs {
	c := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	off := 0
	for _, lp := range lps {
		c.Tokens = append(c.Tokens, string(lp.Bytes))
		c.TokenLogprobs = append(c.TokenLogprobs, lp.LogProb)
		top := map[string]float64{}
		for _, a := range lp.Top {
			if _, dup := top[string(a.Bytes)]; !dup { // two tokens may share a text: keep the likelier
				top[string(a.Bytes)] = a.LogProb
			}
		}
		c.TopLogprobs = append(c.TopLogprobs, top)
		c.TextOffset = append(c.TextOffset, off)
		off += len(lp.Bytes)
	}
	return c
}

// strp returns a pointer to a copy of s, for optional JSON fields.
func strp(s string) *string { return &s }
