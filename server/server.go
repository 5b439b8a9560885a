// Package server is codeplan's OpenAI-compatible HTTP server. Every chat
// answer is a CodePlan plan-then-answer generation on one shared batching
// engine: the plan comes back in its own field beside the answer
// (choices[0].message.plan, or delta.plan when streaming), so that ordinary
// OpenAI clients see only the answer in content while CodePlan-aware
// clients can show or score the plan. The answer mode (direct, nlplan,
// codeplan) is chosen per request with the extra body field "mode".
//
// Endpoints: POST /v1/chat/completions, POST /v1/completions (raw prompt,
// no plan), GET /v1/models, GET /v1/models/{id} and GET /health.
//
// The server protects the engine: requests beyond Parallel running plus
// Queue waiting get 429 at once (a queue nobody bounds only turns overload
// into timeouts), bodies are size-limited, every request has a deadline, and
// a client that disconnects cancels its generation so its slot goes to the
// next request.
package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Defaults of the Config fields.
const (
	DefaultMaxPlanTokens = planner.DefaultMaxPlanTokens
	DefaultMaxTokens     = planner.DefaultMaxTokens
	DefaultMaxBody       = 1 << 20
	DefaultTimeout       = 5 * time.Minute
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 30 * time.Second
)

// Engine is what the server needs of the in-process engine (llama/engine's
// Engine, which the command opens through local): submission that waits for
// queue room, the sequences decoded together, and counters for /health.
type Engine interface {
	SubmitWait(ctx context.Context, req lm.Request) (<-chan lm.Result, error)
	Parallel() int
	Stats() lm.Stats
}

// Config configures a Server. Engine, Chat and ModelID are required.
type Config struct {
	// Engine generates every answer. Its queue should hold at least
	// Parallel+Queue requests; otherwise admitted requests wait for room.
	Engine Engine
	// Chat renders conversations (chattemplate.For(model) in the command).
	Chat planner.ChatTemplater
	// ModelID is the model name in responses and /v1/models.
	ModelID string
	// Mode answers requests that do not name one (default codeplan).
	Mode planner.Mode
	// Format says how plans are asked for (default trained).
	Format planner.Format
	// MaxPlanTokens and MaxTokens are the default limits of the plan and
	// the answer; requests may change them (max_plan_tokens, max_tokens).
	MaxPlanTokens, MaxTokens int
	// Temperature is used when a request gives none (0 = greedy, the
	// default, so that answers are reproducible unless asked otherwise).
	Temperature float64
	// APIKey, when set, must be sent as "Authorization: Bearer KEY" on
	// /v1/ routes; /health stays open for load balancers.
	APIKey string
	// Queue is how many requests may wait for a slot beyond the Parallel
	// that run (default 4 × Parallel; negative = none may wait).
	Queue int
	// Timeout bounds each request from admission to the last byte
	// (default 5 minutes; negative = none).
	Timeout time.Duration
	// MaxBody limits request bodies in bytes (default 1 MiB).
	MaxBody int64
	// HeaderTimeout bounds reading a request's headers, and BodyTimeout
	// reading its body (defaults DefaultHeaderTimeout, DefaultBodyTimeout):
	// a client that trickles bytes must not hold a connection and a
	// handler forever.
	HeaderTimeout, BodyTimeout time.Duration
	// Log receives one line per request (zero value: no logging).
	Log zerolog.Logger
}

// Server answers OpenAI-style requests with plan-then-answer generations.
// Use it as an http.Handler, or run it with Serve and stop it with Shutdown.
type Server struct {
	cfg      Config
	parallel int
	capacity int // running + waiting requests admitted at most
	created  int64

	inflight atomic.Int64 // admitted requests whose engine result is pending
	draining atomic.Bool
	handlers sync.WaitGroup

	// hard ends every request's context: Shutdown cancels it once the
	// grace period is over.
	hard       context.Context
	cancelHard context.CancelFunc

	mu   sync.Mutex
	http *http.Server
}

var (
	errTimedOut     = errors.New("request timed out")
	errShuttingDown = errors.New("server is shutting down")
)

// New checks cfg, fills in defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("server: Config.Engine is nil")
	}
	if cfg.Chat == nil {
		return nil, errors.New("server: Config.Chat is nil (use chattemplate.For(model) or planner.ChatML{})")
	}
	if strings.TrimSpace(cfg.ModelID) == "" {
		return nil, errors.New("server: Config.ModelID is empty")
	}
	if cfg.Mode == "" {
		cfg.Mode = planner.CodePlan
	}
	if !cfg.Mode.Valid() {
		return nil, fmt.Errorf("server: mode %q is not direct, nlplan or codeplan", cfg.Mode)
	}
	if cfg.Format == "" {
		cfg.Format = planner.Trained
	}
	if !cfg.Format.Valid() {
		return nil, fmt.Errorf("server: format %q is not trained or prompted", cfg.Format)
	}
	if cfg.MaxPlanTokens <= 0 {
		cfg.MaxPlanTokens = DefaultMaxPlanTokens
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if !(cfg.Temperature >= 0 && cfg.Temperature <= 2) { // NaN too
		return nil, fmt.Errorf("server: temperature %g is out of range 0..2", cfg.Temperature)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	p := cfg.Engine.Parallel()
	switch {
	case cfg.Queue == 0:
		cfg.Queue = 4 * p
	case cfg.Queue < 0:
		cfg.Queue = 0
	}
	s := &Server{cfg: cfg, parallel: p, capacity: p + cfg.Queue, created: time.Now().Unix()}
	s.hard, s.cancelHard = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts connections on ln until Shutdown; it returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.http == nil {
		s.http = &http.Server{
			Handler: s,
			// A slow client may stream its answer for minutes, so there
			// is no write timeout; headers, though, must come quickly.
			// The body has its own deadline (decodeBody): http.Server's
			// ReadTimeout would also fire on the connection's background
			// read and cancel long generations.
			ReadHeaderTimeout: s.cfg.HeaderTimeout,
			IdleTimeout:       2 * time.Minute,
		}
	}
	srv := s.http
	s.mu.Unlock()
	if s.draining.Load() {
		return nil
	}
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and answers new requests on open
// ones with 503, then waits for the requests in flight until ctx ends (the
// grace period). If they have not finished by then, their generations are
// cancelled, Shutdown waits briefly for them to answer, closes the
// remaining connections and returns ctx's error. The engine is left open:
// it belongs to the caller.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	srv := s.http
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	} else {
		err = waitGroup(ctx, &s.handlers)
	}
	if err != nil {
		s.cancelHard()
		// Cancelled generations stop within one decode step.
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = waitGroup(wctx, &s.handlers)
		cancel()
		if srv != nil {
			_ = srv.Close()
		}
	}
	s.cancelHard()
	return err
}

// waitGroup waits for wg until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Load is the server's occupancy, as /health reports it.
type Load struct {
	Parallel int `json:"parallel"` // sequences decoded together
	Busy     int `json:"busy"`     // slots running a request
	Queued   int `json:"queued"`   // admitted requests waiting for a slot
	QueueCap int `json:"queue_capacity"`
}

// Load returns the current occupancy. Busy and Queued are derived from the
// admitted requests, so a request counts as busy from admission until the
// engine has answered it, which is when its slot is free again.
func (s *Server) Load() Load {
	n := int(s.inflight.Load())
	return Load{Parallel: s.parallel, Busy: min(n, s.parallel), Queued: max(0, n-s.parallel), QueueCap: s.capacity - s.parallel}
}

// handlerFunc is an endpoint; rl collects what the request log reports.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rl *requestLog)

// route binds a method and a path to an endpoint.
type route struct {
	method string
	path   string
	open   bool // no API key needed
	h      handlerFunc
}

func (s *Server) routes() []route {
	return []route{
		{http.MethodPost, "/v1/chat/completions", false, s.chatCompletions},
		{http.MethodPost, "/v1/completions", false, s.completions},
		{http.MethodGet, "/v1/models", false, s.models},
		{http.MethodGet, "/v1/models/", false, s.model}, // prefix: /v1/models/{id}
		{http.MethodGet, "/health", true, s.health},
	}
}

// match finds the routes of a path; a path ending in "/" in the table is a
// prefix.
func (s *Server) match(path string) []route {
	var out []route
	for _, rt := range s.routes() {
		if rt.path == path || (strings.HasSuffix(rt.path, "/") && strings.HasPrefix(path, rt.path) && len(path) > len(rt.path)) {
			out = append(out, rt)
		}
	}
	return out
}

// ServeHTTP routes, authenticates and logs every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rl := &requestLog{}
	defer func() { s.logRequest(r, rec, rl, time.Since(start)) }()

	path := r.URL.Path
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	candidates := s.match(path)
	if len(candidates) == 0 {
		writeError(rec, &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "not_found",
			Message: fmt.Sprintf("no route %s %s: this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models and GET /health", r.Method, r.URL.Path)})
		return
	}
	var rt *route
	var allow []string
	for i := range candidates {
		allow = append(allow, candidates[i].method)
		if candidates[i].method == r.Method {
			rt = &candidates[i]
		}
	}
	if rt == nil {
		rec.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(rec, &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))})
		return
	}
	if !rt.open && !s.authorized(r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="codeplan"`)
		writeError(rec, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: "invalid_api_key",
			Message: "missing or wrong API key: send the header \"Authorization: Bearer KEY\""})
		return
	}
	if !rt.open && s.draining.Load() {
		writeError(rec, shuttingDown())
		return
	}
	rt.h(rec, r, rl)
}

func shuttingDown() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "shutting_down",
		Message: "the server is shutting down: retry on another instance or later", RetryAfter: 5}
}

// authorized checks the bearer token in constant time, so that response
// timing does not leak how much of a guessed key was right.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[len(prefix):])), []byte(s.cfg.APIKey)) == 1
}

// health reports liveness and load; it answers 503 while draining so that a
// load balancer stops sending work here.
func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *requestLog) {
	st := s.cfg.Engine.Stats()
	status, code := "ok", http.StatusOK
	if s.draining.Load() {
		status, code = "shutting_down", http.StatusServiceUnavailable
	}
	writeJSON(w, code, struct {
		Status          string `json:"status"`
		Model           string `json:"model"`
		Mode            string `json:"default_mode"`
		Slots           Load   `json:"slots"`
		Completed       int64  `json:"completed"`
		GeneratedTokens int64  `json:"generated_tokens"`
	}{status, s.cfg.ModelID, string(s.cfg.Mode), s.Load(), st.Completed, st.GeneratedTokens})
}

func (s *Server) modelInfo() modelInfo {
	return modelInfo{ID: s.cfg.ModelID, Object: "model", Created: s.created, OwnedBy: "codeplan"}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request, _ *requestLog) {
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: []modelInfo{s.modelInfo()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request, _ *requestLog) {
	id := strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/v1/models/")
	if id != s.cfg.ModelID {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("model %q does not exist here: this server serves %q", id, s.cfg.ModelID)})
		return
	}
	writeJSON(w, http.StatusOK, s.modelInfo())
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, asAPIError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// newID returns prefix plus 24 random hex digits.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// requestLog is what an endpoint adds to its request's log line.
type requestLog struct {
	id               string
	mode             planner.Mode
	stream           bool
	promptTokens     int
	completionTokens int
	err              string
	clientGone       bool
}

// recorder remembers the status and size of a response for the log, and
// passes flushes through for streaming.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader implements http.ResponseWriter.
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher, which server-sent events need.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) logRequest(r *http.Request, rec *recorder, rl *requestLog, d time.Duration) {
	status := rec.status
	if rl.clientGone {
		status = statusClientClosed
	}
	ev := s.cfg.Log.Info()
	switch {
	case status >= 500:
		ev = s.cfg.Log.Error()
	case status >= 400, rl.err != "": // rl.err: a stream that failed after its 200
		ev = s.cfg.Log.Warn()
	}
	ev = ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Str("remote", r.RemoteAddr).Int64("dur_ms", d.Milliseconds())
	if rl.id != "" {
		ev = ev.Str("id", rl.id).Str("mode", string(rl.mode)).Bool("stream", rl.stream).
			Int("prompt_tokens", rl.promptTokens).Int("completion_tokens", rl.completionTokens)
	}
	if rl.err != "" {
		ev = ev.Str("error", rl.err)
	}
	ev.Msg("request")
}
