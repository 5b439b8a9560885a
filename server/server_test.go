package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"

	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/planner"
)

// model is the tiny random-weight model: its answers are noise, so the
// tests check the mechanics (fields, limits, equality with a direct engine
// run), never the content.
var model *llama.Model

func TestMain(m *testing.M) { testmodel.Main(m, &model) }

const testModelID = "tiny-test"

// testServer is a Server listening on 127.0.0.1 with its engine.
type testServer struct {
	*Server
	eng *engine.Engine
	url string // http://127.0.0.1:PORT
}

// startServer serves the tiny model; edit adjusts the Config.
func startServer(t testing.TB, parallel, slotCtx int, edit func(*Config)) *testServer {
	t.Helper()
	lctx, err := model.NewContext(llama.ContextOptions{ContextSize: parallel * slotCtx, Sequences: parallel, BatchSize: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Chat: planner.ChatML{}, ModelID: testModelID, MaxPlanTokens: 6, MaxTokens: 8, Queue: 4 * parallel}
	if edit != nil {
		edit(&cfg)
	}
	eng, err := engine.New(lctx, engine.Options{Parallel: parallel, QueueSize: parallel + max(0, cfg.Queue)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Engine = eng
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		eng.Close()
		lctx.Close()
	})
	return &testServer{Server: srv, eng: eng, url: "http://" + ln.Addr().String()}
}

func (ts *testServer) client(opts ...option.RequestOption) openai.Client {
	base := []option.RequestOption{option.WithBaseURL(ts.url + "/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0)}
	return openai.NewClient(append(base, opts...)...)
}

// alone answers one user message on the engine directly, without HTTP:
// what the server must reproduce (greedy) whatever else it is doing.
func (ts *testServer) alone(t *testing.T, mode planner.Mode, user string, maxPlan, maxTokens int) inference.Answer {
	t.Helper()
	r := inference.Runner{Engine: ts.eng, Prompter: planner.Prompter{Mode: mode, Format: planner.Trained, Chat: planner.ChatML{}},
		Settings: inference.Settings{MaxPlanTokens: maxPlan, MaxTokens: maxTokens}}
	a, err := r.Answer(context.Background(), nil, user, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func chatParams(user string, maxTokens int64) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:       testModelID,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user)},
		MaxTokens:   openai.Int(maxTokens),
		Temperature: openai.Float(0),
	}
}

// extraString reads a string field that the OpenAI types do not know.
func extraString(t *testing.T, fields map[string]respjson.Field, name string) (string, bool) {
	t.Helper()
	f, ok := fields[name]
	if !ok || f.Raw() == "" || f.Raw() == "null" {
		return "", false
	}
	var s string
	if err := json.Unmarshal([]byte(f.Raw()), &s); err != nil {
		t.Fatalf("field %s = %s: %v", name, f.Raw(), err)
	}
	return s, true
}

// normalise makes streamed and whole texts comparable: invalid bytes of the
// random model become one U+FFFD per run in the engine's result but one per
// byte when streamed pieces are JSON-encoded.
func normalise(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	for strings.Contains(s, "\uFFFD\uFFFD") {
		s = strings.ReplaceAll(s, "\uFFFD\uFFFD", "\uFFFD")
	}
	return s
}

func TestChatNonStreaming(t *testing.T) {
	ts := startServer(t, 2, 512, nil)
	c := ts.client()
	for _, mode := range planner.Modes() {
		t.Run(string(mode), func(t *testing.T) {
			const user = "What is 17 * 23?"
			resp, err := c.Chat.Completions.New(context.Background(), chatParams(user, 8),
				option.WithJSONSet("mode", string(mode)), option.WithJSONSet("max_plan_tokens", 6))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != testModelID || resp.Object != "chat.completion" {
				t.Errorf("id %q model %q object %q", resp.ID, resp.Model, resp.Object)
			}
			if len(resp.Choices) != 1 {
				t.Fatalf("%d choices, want 1", len(resp.Choices))
			}
			msg := resp.Choices[0].Message
			fields := msg.JSON.ExtraFields
			plan, hasPlan := extraString(t, fields, "plan")
			planFinish, _ := extraString(t, fields, "plan_finish_reason")
			if hasPlan != mode.HasPlan() {
				t.Fatalf("plan field present = %v in %s mode (message %s)", hasPlan, mode, msg.RawJSON())
			}
			want := ts.alone(t, mode, user, 6, 8)
			if msg.Content != want.Answer || plan != want.Plan || planFinish != want.PlanFinish {
				t.Errorf("server answered plan %q (%s) answer %q; engine alone: plan %q (%s) answer %q",
					plan, planFinish, msg.Content, want.Plan, want.PlanFinish, want.Answer)
			}
			if fr := resp.Choices[0].FinishReason; fr != want.Finish {
				t.Errorf("finish_reason %q, want %q", fr, want.Finish)
			}
			u := resp.Usage
			if u.PromptTokens != int64(want.PromptTokens) || u.CompletionTokens != int64(want.PlanTokens+want.AnswerTokens) ||
				u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Errorf("usage %+v, want prompt %d completion %d", u, want.PromptTokens, want.PlanTokens+want.AnswerTokens)
			}
			if u.CompletionTokens > 6+8 || u.CompletionTokens == 0 {
				t.Errorf("completion_tokens %d outside 1..14 (max_plan_tokens 6 + max_tokens 8)", u.CompletionTokens)
			}
		})
	}
}

func TestChatStreaming(t *testing.T) {
	ts := startServer(t, 2, 512, nil)
	c := ts.client()
	for _, mode := range []planner.Mode{planner.CodePlan, planner.Direct} {
		t.Run(string(mode), func(t *testing.T) {
			const user = "Plan a three-day trip."
			p := chatParams(user, 8)
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(context.Background(), p,
				option.WithJSONSet("mode", string(mode)), option.WithJSONSet("max_plan_tokens", 6))
			var plan, answer strings.Builder
			var finish string
			var usage openai.CompletionUsage
			ids := map[string]bool{}
			planDeltas, chunks := 0, 0
			for stream.Next() {
				ch := stream.Current()
				chunks++
				ids[ch.ID] = true
				if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
					usage = ch.Usage
				}
				for _, choice := range ch.Choices {
					if s, ok := extraString(t, choice.Delta.JSON.ExtraFields, "plan"); ok {
						plan.WriteString(s)
						planDeltas++
					}
					answer.WriteString(choice.Delta.Content)
					if choice.FinishReason != "" {
						finish = choice.FinishReason
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if len(ids) != 1 || chunks < 3 {
				t.Errorf("%d chunks with ids %v: want one id over at least opening, text and finish", chunks, ids)
			}
			if (planDeltas > 0) != mode.HasPlan() {
				t.Errorf("%d plan deltas in %s mode", planDeltas, mode)
			}
			want := ts.alone(t, mode, user, 6, 8)
			if got := normalise(planner.CleanPlan(plan.String())); got != normalise(want.Plan) {
				t.Errorf("streamed plan %q, alone %q", got, want.Plan)
			}
			if got := normalise(strings.TrimSpace(answer.String())); got != normalise(want.Answer) {
				t.Errorf("streamed answer %q, alone %q", got, want.Answer)
			}
			if finish != want.Finish {
				t.Errorf("finish_reason %q, want %q", finish, want.Finish)
			}
			if usage.CompletionTokens != int64(want.PlanTokens+want.AnswerTokens) || usage.PromptTokens != int64(want.PromptTokens) {
				t.Errorf("usage chunk %+v, want prompt %d completion %d", usage, want.PromptTokens, want.PlanTokens+want.AnswerTokens)
			}
		})
	}
}

// TestConcurrentRequests: eight clients at once each get their own answer,
// equal to the same prompt run alone (greedy decoding).
func TestConcurrentRequests(t *testing.T) {
	const clients = 8
	ts := startServer(t, 4, 256, nil)
	c := ts.client()
	users := make([]string, clients)
	want := make([]inference.Answer, clients)
	for i := range users {
		users[i] = fmt.Sprintf("Question %d: %s", i, strings.Repeat("why? ", i%3+1))
		want[i] = ts.alone(t, planner.CodePlan, users[i], 6, 8)
	}
	type got struct {
		id, plan, answer string
		err              error
	}
	out := make([]got, clients)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			resp, err := c.Chat.Completions.New(context.Background(), chatParams(users[i], 8), option.WithJSONSet("mode", "codeplan"))
			if err != nil {
				out[i].err = err
				return
			}
			// t.Fatal must not run off the test goroutine: decode here.
			var plan string
			if err := json.Unmarshal([]byte(resp.Choices[0].Message.JSON.ExtraFields["plan"].Raw()), &plan); err != nil {
				out[i].err = fmt.Errorf("plan field: %w", err)
				return
			}
			out[i] = got{id: resp.ID, plan: plan, answer: resp.Choices[0].Message.Content}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, g := range out {
		if g.err != nil {
			t.Errorf("client %d: %v", i, g.err)
			continue
		}
		if j, dup := seen[g.id]; dup {
			t.Errorf("clients %d and %d both got id %s", j, i, g.id)
		}
		seen[g.id] = i
		if g.plan != want[i].Plan || g.answer != want[i].Answer {
			t.Errorf("client %d: plan %q answer %q; alone: plan %q answer %q", i, g.plan, g.answer, want[i].Plan, want[i].Answer)
		}
	}
}

func TestCompletions(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	c := ts.client()
	const prompt = "Once upon a time"
	resp, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model:       openai.CompletionNewParamsModel(testModelID),
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens:   openai.Int(7),
		Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.eng.Generate(context.Background(), lm.Request{Phases: []lm.Phase{{Prefix: prompt, MaxTokens: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text != res.Text() || string(resp.Choices[0].FinishReason) != string(res.Phases[0].Finish) {
		t.Errorf("completion %+v, engine alone %q (%s)", resp.Choices, res.Text(), res.Phases[0].Finish)
	}
	if resp.Usage.CompletionTokens != int64(res.GeneratedTokens()) || resp.Usage.PromptTokens != int64(res.PromptTokens) {
		t.Errorf("usage %+v, engine prompt %d generated %d", resp.Usage, res.PromptTokens, res.GeneratedTokens())
	}
	if _, ok := resp.JSON.ExtraFields["plan"]; ok {
		t.Error("a completion carries a plan")
	}
}

func TestModels(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	c := ts.client()
	list, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 1 || list.Data[0].ID != testModelID {
		t.Fatalf("models %+v, want one with id %s", list.Data, testModelID)
	}
	if m, err := c.Models.Get(context.Background(), testModelID); err != nil || m.ID != testModelID {
		t.Errorf("get %s: %v %v", testModelID, m, err)
	}
	_, err = c.Models.Get(context.Background(), "gpt-4")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("get gpt-4: %v, want 404", err)
	}
}

// post sends a raw request and returns the status, headers and body.
func post(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// checkErrorBody asserts OpenAI's error shape with all four keys.
func checkErrorBody(t *testing.T, body []byte, wantParam, wantCode string) {
	t.Helper()
	var e struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body %s is not an OpenAI error: %v", body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error body %s lacks %q", body, k)
		}
	}
	var msg string
	_ = json.Unmarshal(e.Error["message"], &msg)
	if msg == "" {
		t.Errorf("error body %s has no message", body)
	}
	var param, code string
	_ = json.Unmarshal(e.Error["param"], &param)
	_ = json.Unmarshal(e.Error["code"], &code)
	if wantParam != "" && param != wantParam {
		t.Errorf("param %q, want %q (%s)", param, wantParam, body)
	}
	if wantCode != "" && code != wantCode {
		t.Errorf("code %q, want %q (%s)", code, wantCode, body)
	}
}

func TestBadRequests(t *testing.T) {
	ts := startServer(t, 1, 256, func(c *Config) { c.MaxBody = 4096 })
	chat := ts.url + "/v1/chat/completions"
	user := `[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, method, url, body string
		status                  int
		param, code             string
	}{
		{"oversized body", "POST", chat, `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 8000) + `"}]}`, 413, "", "request_too_large"},
		{"malformed json", "POST", chat, `{"messages": [`, 400, "", ""},
		{"empty body", "POST", chat, ``, 400, "", ""},
		{"wrong type", "POST", chat, `{"messages":` + user + `,"max_tokens":"ten"}`, 400, "max_tokens", ""},
		{"missing messages", "POST", chat, `{"model":"x"}`, 400, "messages", ""},
		{"bad mode", "POST", chat, `{"messages":` + user + `,"mode":"yolo"}`, 400, "mode", ""},
		{"last not user", "POST", chat, `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, 400, "messages[1].role", ""},
		{"tool role", "POST", chat, `{"messages":[{"role":"tool","content":"a"},{"role":"user","content":"b"}]}`, 400, "messages[0].role", ""},
		{"image part", "POST", chat, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content", ""},
		{"n=2", "POST", chat, `{"messages":` + user + `,"n":2}`, 400, "n", ""},
		{"temperature", "POST", chat, `{"messages":` + user + `,"temperature":3}`, 400, "temperature", ""},
		{"zero max_tokens", "POST", chat, `{"messages":` + user + `,"max_tokens":0}`, 400, "max_tokens", ""},
		{"prompt too long", "POST", chat, `{"messages":[{"role":"user","content":"` + strings.Repeat("y", 400) + `"}]}`, 400, "messages", "context_length_exceeded"},
		{"completion without prompt", "POST", ts.url + "/v1/completions", `{"max_tokens":3}`, 400, "prompt", ""},
		{"completion with two prompts", "POST", ts.url + "/v1/completions", `{"prompt":["a","b"]}`, 400, "prompt", ""},
		{"wrong method", "GET", chat, ``, 405, "", "method_not_allowed"},
		{"unknown route", "GET", ts.url + "/v1/embeddings", ``, 404, "", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := post(t, tt.method, tt.url, tt.body, nil)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			checkErrorBody(t, body, tt.param, tt.code)
		})
	}
	// The server still works after all that.
	if status, _, body := post(t, "POST", chat, `{"messages":`+user+`,"max_tokens":2}`, nil); status != 200 {
		t.Errorf("valid request after bad ones: %d %s", status, body)
	}
}

func TestAuth(t *testing.T) {
	ts := startServer(t, 1, 256, func(c *Config) { c.APIKey = "s3cret" })
	for _, tt := range []struct {
		header string
		want   int
	}{{"", 401}, {"Bearer wrong", 401}, {"Basic s3cret", 401}, {"Bearer s3cret", 200}} {
		status, h, body := post(t, "GET", ts.url+"/v1/models", "", map[string]string{"Authorization": tt.header})
		if status != tt.want {
			t.Errorf("Authorization %q: status %d, want %d", tt.header, status, tt.want)
		}
		if status == 401 {
			checkErrorBody(t, body, "", "invalid_api_key")
			if h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		}
	}
	if status, _, _ := post(t, "GET", ts.url+"/health", "", nil); status != 200 {
		t.Errorf("/health without key: %d, want 200 (open for load balancers)", status)
	}
	wrong := ts.client()
	_, err := wrong.Chat.Completions.New(context.Background(), chatParams("hi", 2))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("OpenAI client with a wrong key: %v, want a 401 error", err)
	}
	right := ts.client(option.WithAPIKey("s3cret"))
	resp, err := right.Chat.Completions.New(context.Background(), chatParams("hi", 2))
	if err != nil || len(resp.Choices) != 1 {
		t.Errorf("OpenAI client with the key: %v", err)
	}
}

// openStream starts a long streaming chat request and returns once its
// first event has arrived, i.e. once it holds a slot.
func openStream(t *testing.T, ctx context.Context, url string) *http.Response {
	t.Helper()
	body := `{"messages":[{"role":"user","content":"go on forever"}],"stream":true,"mode":"direct","max_tokens":100000}`
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first event %q: %v", line, err)
	}
	return resp
}

// waitLoad polls Load until ok accepts it.
func waitLoad(t *testing.T, ts *testServer, what string, ok func(Load) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(ts.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; load %+v", what, ts.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDisconnectFreesSlot: a client that hangs up mid-stream cancels its
// generation, so the only slot serves the next request.
func TestDisconnectFreesSlot(t *testing.T) {
	ts := startServer(t, 1, 2048, func(c *Config) { c.Queue = -1 })
	ctx, cancel := context.WithCancel(context.Background())
	resp := openStream(t, ctx, ts.url)
	if l := ts.Load(); l.Busy != 1 {
		t.Fatalf("load %+v while streaming, want 1 busy", l)
	}
	cancel()
	resp.Body.Close()
	waitLoad(t, ts, "the slot to be freed", func(l Load) bool { return l.Busy == 0 })
	c := ts.client()
	resp2, err := c.Chat.Completions.New(context.Background(), chatParams("next", 3))
	if err != nil || len(resp2.Choices) != 1 {
		t.Fatalf("request after the disconnect: %v", err)
	}
	if gen := ts.eng.Stats().GeneratedTokens; gen > 1000 {
		t.Errorf("%d tokens generated: the abandoned stream was not cancelled", gen)
	}
}

// TestQueueFull: one running, one waiting, the third is turned away.
func TestQueueFull(t *testing.T) {
	ts := startServer(t, 1, 2048, func(c *Config) { c.Queue = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openStream(t, ctx, ts.url)
	defer resp.Body.Close()
	waiting := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v1/chat/completions",
			strings.NewReader(`{"messages":[{"role":"user","content":"wait"}],"max_tokens":2}`))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			waiting <- 0
			return
		}
		r.Body.Close()
		waiting <- r.StatusCode
	}()
	waitLoad(t, ts, "one queued request", func(l Load) bool { return l.Queued == 1 })
	status, h, body := post(t, "POST", ts.url+"/v1/chat/completions", `{"messages":[{"role":"user","content":"third"}]}`, nil)
	if status != http.StatusTooManyRequests {
		t.Fatalf("third request: %d %s, want 429", status, body)
	}
	if h.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	checkErrorBody(t, body, "", "queue_full")
	var health struct {
		Slots Load `json:"slots"`
	}
	_, _, hb := post(t, "GET", ts.url+"/health", "", nil)
	if err := json.Unmarshal(hb, &health); err != nil || health.Slots.Busy != 1 || health.Slots.Queued != 1 || health.Slots.QueueCap != 1 {
		t.Errorf("/health %s: want busy 1, queued 1, capacity 1", hb)
	}
	// Ending the stream lets the queued request run.
	resp.Body.Close()
	cancel()
	_ = <-waiting
}

func TestTimeout(t *testing.T) {
	ts := startServer(t, 1, 4096, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	start := time.Now()
	status, _, body := post(t, "POST", ts.url+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":"long"}],"mode":"direct","max_tokens":100000}`, nil)
	if status != http.StatusGatewayTimeout {
		t.Fatalf("status %d %s, want 504", status, body)
	}
	checkErrorBody(t, body, "", "timeout")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timed-out request took %s", d)
	}
	waitLoad(t, ts, "the slot to be freed", func(l Load) bool { return l.Busy == 0 })
}

// readEvents reads a stream to the end and returns the data of its events.
func readEvents(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}

// TestGracefulShutdown: a running stream finishes during the grace period
// while new requests are refused.
func TestGracefulShutdown(t *testing.T) {
	// Long enough (thousands of tokens) that the request is still running
	// when the test looks at the load, short enough to finish in the grace.
	ts := startServer(t, 1, 4096, nil)
	body := `{"messages":[{"role":"user","content":"finish me"}],"stream":true,"mode":"direct","max_tokens":3000}`
	resp, err := http.Post(ts.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitLoad(t, ts, "the stream to start", func(l Load) bool { return l.Busy == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- ts.Shutdown(ctx)
	}()
	for !ts.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	// New connections are refused (or, on a connection still open, 503).
	if r, err := http.Post(ts.url+"/v1/chat/completions", "application/json", strings.NewReader(body)); err == nil {
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("request while draining: %d, want 503 or a refused connection", r.StatusCode)
		}
		r.Body.Close()
	}
	events := readEvents(resp.Body)
	if n := len(events); n < 4 || events[n-1] != "[DONE]" || !strings.Contains(events[n-2], `"finish_reason":"`) {
		t.Errorf("in-flight stream did not finish normally: %d events, last %q", n, events[max(0, n-2):])
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestShutdownGraceOver: when the grace period ends, running requests are
// cancelled and told why.
func TestShutdownGraceOver(t *testing.T) {
	ts := startServer(t, 1, 4096, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openStream(t, ctx, ts.url)
	defer resp.Body.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	start := time.Now()
	if err := ts.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown: %v, want the grace period's deadline", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	events := readEvents(resp.Body)
	if n := len(events); n < 2 || events[n-1] != "[DONE]" || !strings.Contains(events[n-2], "shutting_down") {
		t.Errorf("cancelled stream: want an error event saying shutting_down, then [DONE]; got %d events, last %q", n, events[max(0, n-2):])
	}
	waitLoad(t, ts, "the slot to be freed", func(l Load) bool { return l.Busy == 0 })
}

func TestHealth(t *testing.T) {
	ts := startServer(t, 3, 256, func(c *Config) { c.Queue = 5 })
	status, _, body := post(t, "GET", ts.url+"/health", "", nil)
	var h struct {
		Status string `json:"status"`
		Model  string `json:"model"`
		Slots  Load   `json:"slots"`
	}
	if err := json.Unmarshal(body, &h); err != nil || status != 200 {
		t.Fatalf("health %d %s: %v", status, body, err)
	}
	if h.Status != "ok" || h.Model != testModelID || h.Slots != (Load{Parallel: 3, QueueCap: 5}) {
		t.Errorf("health %+v", h)
	}
}

func TestStopStrings(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	// The random model's answer to a prompt may end early; take the first
	// of a few prompts whose answer is long enough to cut in its middle, so
	// the test always checks a cut instead of skipping.
	var prompt string
	var want inference.Answer
	for _, p := range []string{"say something", "tell me more", "hello there", "write a line", "go on", "list three things"} {
		if a := ts.alone(t, planner.Direct, p, 6, 12); len(a.Answer) >= 4 {
			prompt, want = p, a
			break
		}
	}
	if prompt == "" {
		t.Fatal("no prompt gave an answer of 4 or more bytes to cut")
	}
	stop := want.Answer[2:4]
	req := fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"mode":"direct","max_tokens":12,"stop":%q}`, prompt, stop)
	status, _, body := post(t, "POST", ts.url+"/v1/chat/completions", req, nil)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var resp chatResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	cut := want.Answer[:strings.Index(want.Answer, stop)]
	if got := resp.Choices[0].Message.Content; got != strings.TrimSpace(cut) || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("with stop %q: %q (%s), want %q (stop)", stop, got, resp.Choices[0].FinishReason, cut)
	}
}

func TestNew(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no engine", Config{Chat: planner.ChatML{}, ModelID: "m"}},
		{"no chat", Config{Engine: ts.eng, ModelID: "m"}},
		{"no id", Config{Engine: ts.eng, Chat: planner.ChatML{}}},
		{"bad mode", Config{Engine: ts.eng, Chat: planner.ChatML{}, ModelID: "m", Mode: "x"}},
		{"bad format", Config{Engine: ts.eng, Chat: planner.ChatML{}, ModelID: "m", Format: "x"}},
		{"bad temperature", Config{Engine: ts.eng, Chat: planner.ChatML{}, ModelID: "m", Temperature: 5}},
		{"NaN temperature", Config{Engine: ts.eng, Chat: planner.ChatML{}, ModelID: "m", Temperature: math.NaN()}},
	} {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", tt.name, tt.cfg)
		}
	}
	s, err := New(Config{Engine: ts.eng, Chat: planner.ChatML{}, ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Mode != planner.CodePlan || s.cfg.MaxBody != DefaultMaxBody || s.cfg.Timeout != DefaultTimeout || s.Load().QueueCap != 4 {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}
