package remote

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// okBody is a chat completion as vLLM sends it.
const okBody = `{"id":"c1","object":"chat.completion","choices":[{"index":0,
"message":{"role":"assistant","content":"def plan():\n    pass"},"finish_reason":"stop"}],
"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`

var userMsg = []Message{{Role: "user", Content: "extract the plan"}}

// newClient returns a client for srv with fast retries.
func newClient(t *testing.T, srv *httptest.Server, opts Options) *Client {
	t.Helper()
	return fleetClient(t, []string{srv.URL}, opts)
}

func TestChatSuccess(t *testing.T) {
	var got struct {
		path, auth, ctype string
		body              map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path = r.Method + " " + r.URL.Path
		got.auth = r.Header.Get("Authorization")
		got.ctype = r.Header.Get("Content-Type")
		if err := json.NewDecoder(r.Body).Decode(&got.body); err != nil {
			t.Errorf("request body: %v", err)
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()

	c := newClient(t, srv, Options{Model: "qwen", APIKey: "sk-test"})
	seed := int64(42)
	comp, err := c.Chat(context.Background(), userMsg, Params{MaxTokens: 256, Temperature: 0, Seed: &seed, Stop: []string{"</plan>"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Completion{Text: "def plan():\n    pass", FinishReason: "stop", PromptTokens: 12, CompletionTokens: 5}
	if comp != want {
		t.Errorf("completion %+v, want %+v", comp, want)
	}
	if got.path != "POST /v1/chat/completions" {
		t.Errorf("request %q", got.path)
	}
	if got.auth != "Bearer sk-test" || got.ctype != "application/json" {
		t.Errorf("headers: Authorization %q, Content-Type %q", got.auth, got.ctype)
	}
	b := got.body
	if b["model"] != "qwen" || b["max_tokens"] != float64(256) || b["seed"] != float64(42) {
		t.Errorf("body %v", b)
	}
	// Temperature 0 means greedy and must be sent; TopP 0 is invalid and
	// must not be.
	if temp, ok := b["temperature"]; !ok || temp != float64(0) {
		t.Errorf("temperature missing or wrong in %v", b)
	}
	if _, ok := b["top_p"]; ok {
		t.Errorf("top_p sent although unset: %v", b)
	}
	msgs, _ := b["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["content"] != "extract the plan" {
		t.Errorf("messages %v", b["messages"])
	}
	if stop, _ := b["stop"].([]any); len(stop) != 1 || stop[0] != "</plan>" {
		t.Errorf("stop %v", b["stop"])
	}
	// Unset extensions are not sent: other servers may reject them.
	for _, k := range []string{"top_k", "min_p", "repeat_penalty", "mode"} {
		if _, ok := b[k]; ok {
			t.Errorf("%s sent although unset: %v", k, b)
		}
	}
}

// TestChatSendsSamplingAndMode checks that every sampling setting extract
// has, and codeplan serve's mode, reach the request body.
func TestChatSendsSamplingAndMode(t *testing.T) {
	var body map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := newClient(t, srv, Options{Model: "m"})
	seed := int64(7)
	_, err := c.Chat(context.Background(), userMsg, Params{MaxTokens: 64, Temperature: 0.7, TopP: 0.9, TopK: 40,
		MinP: 0.05, RepeatPenalty: 1.1, Seed: &seed, Mode: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"temperature": 0.7, "top_p": 0.9, "top_k": float64(40), "min_p": 0.05,
		"repeat_penalty": 1.1, "seed": float64(7), "mode": "direct", "max_tokens": float64(64)}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v (body %v)", k, body[k], v, body)
		}
	}
	// repeat_penalty 1 is "off" and is not sent.
	body = nil
	if _, err := c.Chat(context.Background(), userMsg, Params{RepeatPenalty: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["repeat_penalty"]; ok {
		t.Errorf("repeat_penalty 1 sent: %v", body)
	}
}

func TestFinishReasonLengthAndNullContent(t *testing.T) {
	tests := []struct {
		body string
		want Completion
	}{
		{`{"choices":[{"message":{"content":"def plan(): wh"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":8}}`,
			Completion{Text: "def plan(): wh", FinishReason: "length", PromptTokens: 3, CompletionTokens: 8}},
		{`{"choices":[{"message":{"content":null},"finish_reason":"tool_calls"}]}`,
			Completion{FinishReason: "tool_calls"}},
		{`{"choices":[{"message":{"content":"x"},"finish_reason":null}]}`,
			Completion{Text: "x"}},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, tt.body)
		}))
		comp, err := newClient(t, srv, Options{}).Chat(context.Background(), userMsg, Params{})
		srv.Close()
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if comp != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.body, comp, tt.want)
		}
	}
}

func TestBaseURLForms(t *testing.T) {
	var paths []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		io.WriteString(w, okBody)
	}))
	defer srv.Close()

	for _, base := range []string{srv.URL, srv.URL + "/", srv.URL + "/v1", srv.URL + "/v1/", srv.URL + "/proxy/v1"} {
		c, err := New(Options{BaseURL: base, Model: "m"})
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
	want := "/v1/chat/completions,/v1/chat/completions,/v1/chat/completions,/v1/chat/completions,/proxy/v1/chat/completions"
	if strings.Join(paths, ",") != want {
		t.Errorf("paths %v, want %s", paths, want)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, base := range []string{"", "localhost:8000", "ftp://host", "http://", "::"} {
		if _, err := New(Options{BaseURL: base}); err == nil {
			t.Errorf("New(%q): no error", base)
		}
	}
}

// scripted returns a server answering each request with the next status of
// script (the last one repeating), and counting requests.
func scripted(t *testing.T, script []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := script[min(i, len(script)-1)]
		for k, v := range header {
			w.Header()[k] = v
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"message":"nope `+http.StatusText(status)+`","type":"x"}}`)
			return
		}
		io.WriteString(w, okBody)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetry429ThenSuccess(t *testing.T) {
	srv, n := scripted(t, []int{429, 429, 200}, nil)
	comp, err := newClient(t, srv, Options{MaxRetries: 3}).Chat(context.Background(), userMsg, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if comp.FinishReason != "stop" {
		t.Errorf("completion %+v", comp)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (two retries)", got)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv, n := scripted(t, []int{503, 200}, http.Header{"Retry-After": {"1"}})
	start := time.Now()
	if _, err := newClient(t, srv, Options{}).Chat(context.Background(), userMsg, Params{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", el)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"-1", 0},
		{"99999", MaxRetryAfter},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.h, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestServerErrorExhaustsRetries(t *testing.T) {
	srv, n := scripted(t, []int{500}, nil)
	_, err := newClient(t, srv, Options{MaxRetries: 2}).Chat(context.Background(), userMsg, Params{})
	if err == nil {
		t.Fatal("no error")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (first + 2 retries)", got)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 {
		t.Fatalf("error %v does not carry the 500", err)
	}
	for _, part := range []string{"giving up after 3 attempts", "500", "nope Internal Server Error"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 404, 422} {
		srv, n := scripted(t, []int{status, 200}, nil)
		_, err := newClient(t, srv, Options{MaxRetries: 5}).Chat(context.Background(), userMsg, Params{})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != status {
			t.Errorf("status %d: error %v", status, err)
			continue
		}
		if apiErr.Message != "nope "+http.StatusText(status) {
			t.Errorf("status %d: message %q", status, apiErr.Message)
		}
		if got := n.Load(); got != 1 {
			t.Errorf("status %d: %d requests, want 1", status, got)
		}
	}
}

func TestNoRetriesWhenDisabled(t *testing.T) {
	srv, n := scripted(t, []int{500, 200}, nil)
	_, err := newClient(t, srv, Options{MaxRetries: -1}).Chat(context.Background(), userMsg, Params{})
	if err == nil || n.Load() != 1 {
		t.Errorf("err %v after %d requests; want an error after 1", err, n.Load())
	}
}

func TestErrorMessageShapes(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"error":{"message":"model not found","type":"invalid_request_error","code":404}}`, "model not found"},
		{`{"object":"error","message":"max_tokens too large","type":"BadRequestError","code":400}`, "max_tokens too large"},
		{`{"error":"model 'x' not found"}`, "model 'x' not found"},
		{`{"detail":[{"loc":["body","messages"],"msg":"field required"}]}`, `[{"loc":["body","messages"],"msg":"field required"}]`},
		{"<html>\n<body>Bad Gateway</body>\n</html>", "<html> <body>Bad Gateway</body> </html>"},
		{"", "(empty)"},
	}
	for _, tt := range tests {
		if got := errorMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("errorMessage(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
	if got := errorMessage([]byte(strings.Repeat("x", 1000))); len(got) != 303 {
		t.Errorf("long body gives a %d-byte message, want it cut to 300+...", len(got))
	}
}

func TestMalformedSuccessNotRetried(t *testing.T) {
	for _, body := range []string{`not json`, `{"choices":[]}`} {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			io.WriteString(w, body)
		}))
		_, err := newClient(t, srv, Options{}).Chat(context.Background(), userMsg, Params{})
		srv.Close()
		if err == nil || n.Load() != 1 {
			t.Errorf("body %q: err %v after %d requests", body, err, n.Load())
		}
	}
}

// blockingServer answers the first `slow` requests only when the client
// gives up (or the test ends), and the others at once.
func blockingServer(t *testing.T, slow int32) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the request
		// body has been read.
		io.Copy(io.Discard, r.Body)
		if n.Add(1) <= slow {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		io.WriteString(w, okBody)
	}))
	// Cleanups run last-registered first: unblock handlers, then close.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return srv, &n
}

func TestTimeout(t *testing.T) {
	srv, n := blockingServer(t, 100)
	start := time.Now()
	_, err := newClient(t, srv, Options{Timeout: 50 * time.Millisecond, MaxRetries: -1}).Chat(context.Background(), userMsg, Params{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timed out after %v", el)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

func TestTimeoutRetried(t *testing.T) {
	srv, n := blockingServer(t, 1)
	comp, err := newClient(t, srv, Options{Timeout: 50 * time.Millisecond, MaxRetries: 2}).Chat(context.Background(), userMsg, Params{})
	if err != nil || comp.FinishReason != "stop" {
		t.Fatalf("got %+v, %v", comp, err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d requests, want 2 (one timed out)", got)
	}
}

func TestConnectionErrorRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			// Drop the connection without an answer, as a crashing
			// server would.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	if _, err := newClient(t, srv, Options{}).Chat(context.Background(), userMsg, Params{}); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	c, err := New(Options{BaseURL: base, Model: "m", MaxRetries: 1, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Chat(context.Background(), userMsg, Params{})
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts") {
		t.Errorf("error %v", err)
	}
}

func TestConcurrencyBound(t *testing.T) {
	const limit = 3
	var inFlight, maxInFlight, total atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		total.Add(1)
		for {
			old := maxInFlight.Load()
			if cur <= old || maxInFlight.CompareAndSwap(old, cur) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, okBody)
	}))
	defer srv.Close()

	c := newClient(t, srv, Options{Concurrency: limit})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := maxInFlight.Load(); got > limit {
		t.Errorf("%d requests in flight at once, limit %d", got, limit)
	} else if got < 2 {
		t.Errorf("at most %d request in flight: requests were not concurrent", got)
	}
	if got := total.Load(); got != 20 {
		t.Errorf("%d requests served, want 20", got)
	}
}

func TestCancellation(t *testing.T) {
	t.Run("in flight", func(t *testing.T) {
		srv, n := blockingServer(t, 100)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := newClient(t, srv, Options{MaxRetries: 5}).Chat(ctx, userMsg, Params{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("returned %v after cancellation", el)
		}
		if got := n.Load(); got != 1 {
			t.Errorf("%d requests, want 1: a cancelled call must not retry", got)
		}
	})
	t.Run("during backoff", func(t *testing.T) {
		srv, _ := scripted(t, []int{500}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := newClient(t, srv, Options{Backoff: time.Minute}).Chat(ctx, userMsg, Params{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("returned %v after cancellation", el)
		}
	})
	t.Run("waiting for a slot", func(t *testing.T) {
		srv, _ := blockingServer(t, 100)
		c := newClient(t, srv, Options{Concurrency: 1})
		hold, release := context.WithCancel(context.Background())
		defer release()
		started := make(chan struct{})
		go func() {
			close(started)
			c.Chat(hold, userMsg, Params{}) // occupies the only slot
		}()
		<-started
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Chat(ctx, userMsg, Params{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want the caller's deadline", err)
		}
	})
}

func TestModels(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"id":"qwen2.5-7b","object":"model"},{"id":"llama3","object":"model"}]}`)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "qwen2.5-7b,llama3" {
		t.Errorf("models %v", ids)
	}
	infos, err := c.ModelInfos(context.Background())
	if err != nil || len(infos) != 2 || infos[0].Codeplan() {
		t.Errorf("model infos %v, %v", infos, err)
	}
}

func TestModelInfosCodeplan(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"codeplan"}]}`)
	}))
	defer srv.Close()
	c, _ := New(Options{BaseURL: srv.URL})
	infos, err := c.ModelInfos(context.Background())
	if err != nil || len(infos) != 1 || infos[0].ID != "tiny" || !infos[0].Codeplan() {
		t.Errorf("model infos %v, %v", infos, err)
	}
}

func TestChatNeedsModelAndMessages(t *testing.T) {
	srv, n := scripted(t, []int{200}, nil)
	c, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Chat(context.Background(), userMsg, Params{}); err == nil {
		t.Error("no error without a model")
	}
	if _, err := newClient(t, srv, Options{}).Chat(context.Background(), nil, Params{}); err == nil {
		t.Error("no error without messages")
	}
	if n.Load() != 0 {
		t.Error("invalid calls reached the server")
	}
}

func TestDelayGrowsAndIsCapped(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond}
	for attempt, base := range []time.Duration{100, 200, 400, 800} {
		base *= time.Millisecond
		for range 20 {
			if d := c.delay(attempt); d < base/2 || d > base {
				t.Errorf("delay(%d) = %v, want within [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
	for _, attempt := range []int{20, 62, 1000} {
		if d := c.delay(attempt); d < MaxBackoff/2 || d > MaxBackoff {
			t.Errorf("delay(%d) = %v, want capped at %v", attempt, d, MaxBackoff)
		}
	}
}
