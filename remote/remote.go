// Package remote is a client for OpenAI-compatible chat servers (vLLM,
// llama.cpp's server, ollama, `codeplan serve`). `codeplan extract --backend
// openai` uses it to send plan-extraction prompts to a serving fleet that
// already exists instead of loading a model locally.
//
// It is written on net/http and encoding/json rather than an SDK because it
// needs only two endpoints, and because retry, concurrency and error
// behaviour must be exactly what extract relies on: at most Concurrency
// requests in flight, retries only for failures that may pass (429, 5xx,
// timeouts, broken connections), and finish_reason passed through untouched
// since "length" is how extract tells a plan that did not terminate.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/codeplan-dev/codeplan/llama/message"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxRetries  = 3
	DefaultConcurrency = 1
	DefaultBackoff     = 500 * time.Millisecond
	// MaxBackoff caps the exponential delay between retries.
	MaxBackoff = 30 * time.Second
	// MaxRetryAfter caps how long a server's Retry-After can make us wait,
	// so a misconfigured proxy cannot stall a run for hours.
	MaxRetryAfter = 2 * time.Minute
)

// maxBody bounds how much of a response is read: a chat completion is at
// most a few hundred kilobytes, so anything bigger is a misbehaving server.
const maxBody = 64 << 20

// Options configures a Client.
type Options struct {
	// BaseURL is the server address, with or without a trailing /v1, e.g.
	// "http://gpu7:8000" or "http://gpu7:8000/v1/".
	BaseURL string
	// BaseURLs adds more servers of the same fleet. Attempts go round-robin
	// over BaseURL and these; a server that fails to connect is left out for
	// a cool-down, so a retry lands on another one.
	BaseURLs []string
	// MaxConnFailures is how many connection failures in a row on every
	// server make the client give up for good (DefaultMaxConnFailures when
	// zero; negative = never): then Down is closed and every call fails
	// with ErrUnreachable instead of spending its retries on a dead fleet.
	MaxConnFailures int
	// Model is the model name sent with every request (required by Chat).
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// Timeout bounds each attempt of a request (DefaultTimeout when zero).
	// It is per attempt, not per call, so a retry gets the full time again.
	Timeout time.Duration
	// MaxRetries is how many times a failed request is retried
	// (DefaultMaxRetries when zero; a negative value disables retries).
	MaxRetries int
	// Concurrency is the most requests in flight at once across all
	// goroutines using the client (DefaultConcurrency when zero or less).
	Concurrency int
	// Backoff is the delay before the first retry (DefaultBackoff when
	// zero); it doubles with each retry up to MaxBackoff, with jitter.
	Backoff time.Duration
	// HTTPClient, when set, sends the requests instead of a client built
	// for Concurrency connections.
	HTTPClient *http.Client
}

// Client talks to one OpenAI-compatible server. It is safe for concurrent
// use; the concurrency bound is shared by all goroutines.
type Client struct {
	base       string // without trailing slash or /v1
	model      string
	apiKey     string
	timeout    time.Duration
	maxRetries int
	backoff    time.Duration
	http       *http.Client
	slots      chan struct{} // semaphore: one token per request in flight
	rotationState
}

// New returns a client for opts.BaseURL and opts.BaseURLs. It checks the
// URLs but does not contact the servers; call Models or ProbeAll for that.
func New(opts Options) (*Client, error) {
	var eps []*endpoint
	for _, raw := range append([]string{opts.BaseURL}, opts.BaseURLs...) {
		if raw == "" && opts.BaseURL == "" && len(opts.BaseURLs) > 0 {
			continue // BaseURLs alone is fine
		}
		base, err := normalizeBase(raw)
		if err != nil {
			return nil, err
		}
		eps = append(eps, &endpoint{base: base})
	}
	base := eps[0].base

	c := &Client{
		base:       base,
		model:      opts.Model,
		apiKey:     opts.APIKey,
		timeout:    opts.Timeout,
		maxRetries: opts.MaxRetries,
		backoff:    opts.Backoff,
		http:       opts.HTTPClient,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	c.slots = make(chan struct{}, n)
	c.endpoints = eps
	c.down = make(chan struct{})
	switch {
	case opts.MaxConnFailures == 0:
		c.maxConnFails = DefaultMaxConnFailures
	case opts.MaxConnFailures > 0:
		c.maxConnFails = opts.MaxConnFailures
	}
	if c.http == nil {
		// The default transport keeps only 2 idle connections per host,
		// so with more workers every request beyond 2 would open a new
		// connection; keep one per slot instead.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = n
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

// Message is one chat message (message.Message, the one chat-message
// type).
type Message = message.Message

// Params are the sampling parameters of a Chat call.
type Params struct {
	// MaxTokens bounds the completion length; 0 leaves it to the server.
	MaxTokens int
	// Temperature is always sent, since 0 (greedy) is a meaningful value.
	Temperature float64
	// TopP is sent only when positive: servers reject 0.
	TopP float64
	// TopK and MinP are sent only when positive (llama.cpp's and vLLM's
	// extensions; 0 means off).
	TopK int
	MinP float64
	// RepeatPenalty is sent only when set and not 1 (1 = off).
	RepeatPenalty float64
	// Seed, when set, asks the server for reproducible sampling.
	Seed *int64
	// Stop lists stop sequences.
	Stop []string
	// Mode, when set, is sent as codeplan serve's "mode" extension
	// ("direct" for a plain completion with no plan phase). Send it only to
	// a codeplan server (see ModelInfo.Codeplan): other servers may reject
	// unknown fields.
	Mode string
}

// Completion is the result of a Chat call.
type Completion struct {
	// Text is the assistant message.
	Text string
	// FinishReason is the server's finish_reason: "stop" when the model
	// ended (or hit a stop sequence), "length" when MaxTokens cut it off.
	// Other values a server may send are passed through as they are.
	FinishReason string
	// PromptTokens and CompletionTokens come from the server's usage
	// report; 0 when it sent none.
	PromptTokens     int
	CompletionTokens int
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	Model         string    `json:"model"`
	Messages      []Message `json:"messages"`
	MaxTokens     int       `json:"max_tokens,omitempty"`
	Temperature   float64   `json:"temperature"`
	TopP          float64   `json:"top_p,omitempty"`
	TopK          int       `json:"top_k,omitempty"`
	MinP          float64   `json:"min_p,omitempty"`
	RepeatPenalty float64   `json:"repeat_penalty,omitempty"`
	Seed          *int64    `json:"seed,omitempty"`
	Stop          []string  `json:"stop,omitempty"`
	Mode          string    `json:"mode,omitempty"`
	Stream        bool      `json:"stream"`
}

// chatResponse is the part of the response we use.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"` // null for tool calls
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// Chat sends messages to POST {base}/v1/chat/completions and returns the
// first choice. Failures that may pass are retried (see Options); a 4xx
// other than 429 is returned at once as an *APIError.
func (c *Client) Chat(ctx context.Context, messages []Message, params Params) (Completion, error) {
	if c.model == "" {
		return Completion{}, errors.New("remote: no model name given")
	}
	if len(messages) == 0 {
		return Completion{}, errors.New("remote: chat request with no messages")
	}
	req := chatRequest{
		Model:       c.model,
		Messages:    messages,
		MaxTokens:   params.MaxTokens,
		Temperature: params.Temperature,
		TopP:        params.TopP,
		TopK:        max(params.TopK, 0),
		MinP:        max(params.MinP, 0),
		Seed:        params.Seed,
		Stop:        params.Stop,
		Mode:        params.Mode,
	}
	if params.RepeatPenalty != 1 {
		req.RepeatPenalty = params.RepeatPenalty
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Completion{}, fmt.Errorf("remote: encoding chat request: %w", err)
	}
	endpoint := c.base + "/v1/chat/completions"
	raw, err := c.do(ctx, http.MethodPost, endpoint, body)
	if err != nil {
		return Completion{}, err
	}

	var resp chatResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return Completion{}, fmt.Errorf("remote: POST %s: response is not a chat completion: %v (body %s)", endpoint, err, snippet(raw))
	}
	if len(resp.Choices) == 0 {
		return Completion{}, fmt.Errorf("remote: POST %s: response has no choices (body %s)", endpoint, snippet(raw))
	}
	ch := resp.Choices[0]
	out := Completion{
		PromptTokens:     resp.Usage.PromptTokens,
		CompletionTokens: resp.Usage.CompletionTokens,
	}
	if ch.Message.Content != nil {
		out.Text = *ch.Message.Content
	}
	if ch.FinishReason != nil {
		out.FinishReason = *ch.FinishReason
	}
	return out, nil
}

// Models lists the model names the server offers (GET {base}/v1/models).
// Commands call it at start-up to fail early on a wrong URL or key, and to
// check that the --model they were given is served.
func (c *Client) Models(ctx context.Context) ([]string, error) {
	infos, err := c.ModelInfos(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(infos))
	for _, m := range infos {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// ModelInfo is one entry of GET /v1/models.
type ModelInfo struct {
	ID      string `json:"id"`
	OwnedBy string `json:"owned_by"`
}

// Codeplan reports whether the model is served by `codeplan serve`, which
// marks its models owned_by "codeplan" and understands the "mode" field.
func (m ModelInfo) Codeplan() bool { return m.OwnedBy == "codeplan" }

// ModelInfos is Models with each model's owner.
func (c *Client) ModelInfos(ctx context.Context) ([]ModelInfo, error) {
	endpoint := c.base + "/v1/models"
	raw, err := c.do(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data []ModelInfo `json:"data"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("remote: GET %s: response is not a model list: %v (body %s)", endpoint, err, snippet(raw))
	}
	return resp.Data, nil
}

// APIError is a non-2xx answer from the server.
type APIError struct {
	Method, URL string
	// StatusCode is the HTTP status, e.g. 400.
	StatusCode int
	// Message is the server's error message when its body had one in a
	// known shape, else the start of the body.
	Message string
}

// Error reports the request, the status and the server's message.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("remote: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Retryable reports whether retrying may succeed: rate limiting and server
// errors may pass, other client errors (bad request, unknown model, wrong
// key) will not.
func (e *APIError) Retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// do sends one request with retries and returns the body of the first 2xx
// answer. It takes a concurrency slot per attempt, not per call, so a
// request waiting out a backoff does not hold a slot others could use.
func (c *Client) do(ctx context.Context, method, endpoint string, body []byte) ([]byte, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := c.Err(); err != nil {
			return nil, err
		}
		raw, retryAfter, err := c.attempt(ctx, method, endpoint, body)
		if err == nil {
			return raw, nil
		}
		if ctx.Err() != nil {
			// The caller gave up: report that, not the symptom.
			return nil, fmt.Errorf("remote: %s %s: %w", method, endpoint, context.Cause(ctx))
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && !apiErr.Retryable() {
			return nil, err
		}
		lastErr = err
		if attempt >= c.maxRetries {
			break
		}
		delay := c.delay(attempt)
		if retryAfter > 0 {
			delay = min(retryAfter, MaxRetryAfter)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("remote: %s %s: %w (while waiting to retry after: %v)", method, endpoint, context.Cause(ctx), lastErr)
		case <-c.down:
			t.Stop()
			return nil, c.downErr
		case <-t.C:
		}
	}
	if c.maxRetries == 0 {
		return nil, lastErr
	}
	return nil, fmt.Errorf("remote: giving up after %d attempts: %w", c.maxRetries+1, lastErr)
}

// delay is the wait before retry number attempt+1: exponential, capped,
// with "equal jitter" (half fixed, half random) so that many workers that
// failed together do not all come back at the same instant.
func (c *Client) delay(attempt int) time.Duration {
	d := c.backoff << min(attempt, 20)
	if d <= 0 || d > MaxBackoff {
		d = MaxBackoff
	}
	half := d / 2
	return half + rand.N(half+1)
}

// attempt sends the request once, to the next server in the rotation.
// endpoint is a URL under the first base URL (as callers build it); its path
// is sent to the chosen server. retryAfter is the server's Retry-After when
// it sent one with an error.
func (c *Client) attempt(ctx context.Context, method, endpoint string, body []byte) (raw []byte, retryAfter time.Duration, err error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-c.slots }()
	ep := c.pick()
	endpoint = ep.base + strings.TrimPrefix(endpoint, c.base)
	defer func() {
		// Health is about the server, so a request the caller cancelled
		// says nothing either way.
		var apiErr *APIError
		switch {
		case ctx.Err() != nil:
		case err == nil, errors.As(err, &apiErr) && !isGatewayFailure(apiErr.StatusCode):
			c.reached(ep)
		default:
			c.unreachable(ep, err)
		}
	}()

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, endpoint, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("remote: %s %s: %w", method, endpoint, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "codeplan")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// Connection refused or reset, DNS failure, or the per-attempt
		// timeout: all worth retrying.
		return nil, 0, fmt.Errorf("remote: %s %s: %w", method, endpoint, err)
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, 0, fmt.Errorf("remote: %s %s: reading response: %w", method, endpoint, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			&APIError{Method: method, URL: endpoint, StatusCode: resp.StatusCode, Message: errorMessage(raw)}
	}
	return raw, 0, nil
}

// parseRetryAfter reads a Retry-After header, either delay-seconds or an
// HTTP date; 0 means absent or unreadable.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(h, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, MaxRetryAfter.Seconds()) * float64(time.Second))
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// errorMessage extracts the message from an error body. Servers disagree
// on the shape: OpenAI, vLLM and llama.cpp send {"error": {"message": ...}},
// some vLLM versions {"object": "error", "message": ...}, ollama's native
// API {"error": "..."}; proxies send HTML or plain text.
func errorMessage(raw []byte) string {
	var body struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  any             `json:"detail"` // FastAPI
	}
	if json.Unmarshal(raw, &body) == nil {
		var nested struct {
			Message string `json:"message"`
		}
		var flat string
		switch {
		case json.Unmarshal(body.Error, &nested) == nil && nested.Message != "":
			return nested.Message
		case json.Unmarshal(body.Error, &flat) == nil && flat != "":
			return flat
		case body.Message != "":
			return body.Message
		case body.Detail != nil:
			if d, err := json.Marshal(body.Detail); err == nil {
				return string(d)
			}
		}
	}
	return snippet(raw)
}

// snippet returns the start of a body for error messages, on one line.
func snippet(raw []byte) string {
	const limit = 300
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "..."
	}
	if s == "" {
		return "(empty)"
	}
	return s
}
