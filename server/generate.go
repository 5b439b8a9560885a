package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Stream phases, as inference.Stream names them.
const (
	phasePlan   = "plan"
	phaseAnswer = "answer"
)

func (s *Server) defaults() defaults {
	return defaults{maxTokens: s.cfg.MaxTokens, maxPlan: s.cfg.MaxPlanTokens, temperature: s.cfg.Temperature}
}

// decodeBody reads a JSON body of at most MaxBody bytes into v.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	tooLarge := &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
		Message: fmt.Sprintf("request body is larger than the server's limit of %d bytes", s.cfg.MaxBody)}
	if r.ContentLength > s.cfg.MaxBody {
		return tooLarge
	}
	// The deadline covers only the body: it is lifted once the body is in,
	// so that it cannot cut a long generation short.
	rc := http.NewResponseController(w)
	deadlineSet := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if deadlineSet && err == nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		// The rest of a failed body is not worth waiting for: the deadline
		// stays, and the connection closes after the answer.
		w.Header().Set("Connection", "close")
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tooLarge
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &apiError{Status: http.StatusRequestTimeout, Type: typeInvalidRequest, Code: "request_timeout",
				Message: fmt.Sprintf("the request body did not arrive within %s", s.cfg.BodyTimeout)}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	if len(body) == 0 {
		return badRequest("", "the request body is empty: send a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := jsonField(te.Field)
			if strings.HasPrefix(te.Value, "number ") && (te.Type.Kind() == reflect.Float64 || te.Type.Kind() == reflect.Int || te.Type.Kind() == reflect.Int64) {
				return badRequest(field, "%s: %s is out of range or not %s", field, te.Value, jsonTypeName(te.Type))
			}
			return badRequest(field, "%s has the wrong type: got a JSON %s, want %s", field, te.Value, jsonTypeName(te.Type))
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return badRequest("", "the request body is not valid JSON: %v (at byte %d)", err, se.Offset)
		}
		return badRequest("", "the request body is not valid: %v", err)
	}
	return nil
}

// requestContext derives the context of one generation: it ends when the
// client goes away, when the per-request timeout passes, or when Shutdown
// runs out of grace. context.Cause tells which.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(s.hard, func() { cancel(errShuttingDown) })
	tctx, tcancel := ctx, context.CancelFunc(func() {})
	if s.cfg.Timeout > 0 {
		tctx, tcancel = context.WithTimeoutCause(ctx, s.cfg.Timeout, errTimedOut)
	}
	return tctx, func() {
		tcancel()
		stop()
		cancel(nil)
	}
}

// ctxError turns the end of a request context into the answer to send, or
// nil when the client is gone and nobody is left to answer.
func (s *Server) ctxError(ctx context.Context, rl *requestLog) *apiError {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errTimedOut):
		return &apiError{Status: http.StatusGatewayTimeout, Type: typeTimeout, Code: "timeout",
			Message: fmt.Sprintf("the request did not finish within the server's timeout of %s", s.cfg.Timeout)}
	case errors.Is(cause, errShuttingDown):
		return shuttingDown()
	default:
		rl.clientGone = true
		return nil
	}
}

// engineError maps a failed engine result to an answer.
func engineError(err error) *apiError {
	switch {
	case errors.Is(err, lm.ErrPromptTooLong):
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: "messages", Code: "context_length_exceeded",
			Message: "the prompt is longer than the model's context on this server: " + err.Error()}
	case errors.Is(err, lm.ErrClosed):
		return shuttingDown()
	}
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: "generation failed: " + err.Error()}
}

// admit reserves room for one request, or says the server is full.
func (s *Server) admit() *apiError {
	if s.inflight.Add(1) > int64(s.capacity) {
		s.inflight.Add(-1)
		return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "queue_full", RetryAfter: 1,
			Message: fmt.Sprintf("the server is busy: %d requests are running and %d waiting, the most it accepts; retry shortly",
				s.parallel, s.capacity-s.parallel)}
	}
	return nil
}

// pending is a submitted request. Its reservation is released only when
// the engine answers, because only then is its slot free: a handler that
// gives up early (client gone, timeout) leaves the release to a goroutine.
type pending struct {
	s  *Server
	ch <-chan lm.Result
}

// start submits req for one HTTP request. When it returns false the
// response has already been written: an error (queue full, draining, ...)
// or the end of a request whose client went away before it was queued.
func (s *Server) start(ctx context.Context, w http.ResponseWriter, rl *requestLog, req lm.Request) (*pending, bool) {
	p, e := s.submit(ctx, req)
	if e != nil {
		fail(w, rl, e)
		return nil, false
	}
	if p == nil {
		s.streamEnded(&sse{w: w}, ctx, rl)
		return nil, false
	}
	return p, true
}

// submit admits req and hands it to the engine.
func (s *Server) submit(ctx context.Context, req lm.Request) (*pending, *apiError) {
	if e := s.admit(); e != nil {
		return nil, e
	}
	req.Ctx = ctx
	ch, err := s.cfg.Engine.SubmitWait(ctx, req)
	if err != nil {
		s.inflight.Add(-1)
		if ctx.Err() != nil {
			return nil, nil // the caller reads ctx
		}
		return nil, engineError(err)
	}
	return &pending{s: s, ch: ch}, nil
}

// done releases the reservation with the result in hand.
func (p *pending) done() { p.s.inflight.Add(-1) }

// abandon releases the reservation once the engine has dropped the request.
func (p *pending) abandon() {
	go func() {
		select {
		case <-p.ch:
		case <-p.s.hard.Done():
			// The engine is being closed by its owner and answers
			// everything that is left; stop counting now.
		}
		p.s.inflight.Add(-1)
	}()
}

// piece is streamed text of one phase.
type piece struct{ phase, text string }

// streamBuf carries text from the engine goroutine to the handler: the
// engine must never wait for a slow client, so appends only take a lock and
// poke the handler.
type streamBuf struct {
	mu     sync.Mutex
	pieces []piece
	notify chan struct{}
}

func newStreamBuf() *streamBuf { return &streamBuf{notify: make(chan struct{}, 1)} }

// add appends text, merging it with the previous piece of the same phase.
func (b *streamBuf) add(phase, text string) {
	if text == "" {
		return
	}
	b.mu.Lock()
	if n := len(b.pieces); n > 0 && b.pieces[n-1].phase == phase {
		b.pieces[n-1].text += text
	} else {
		b.pieces = append(b.pieces, piece{phase, text})
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// take removes and returns the buffered pieces.
func (b *streamBuf) take() []piece {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.pieces
	b.pieces = nil
	return out
}

// streamFormat builds the events of one streaming endpoint.
type streamFormat struct {
	opening func() any             // sent first (nil: nothing)
	delta   func(p piece) any      // one text delta
	closing func(lm.Result) []any  // finish reason, usage
	usage   func(lm.Result) *usage // for the log
}

// sse writes server-sent events, sending the headers only with the first
// event so that errors found before any text still get a proper status.
type sse struct {
	w       http.ResponseWriter
	started bool
	failed  bool
}

func (e *sse) event(data []byte) {
	if e.failed {
		return
	}
	if !e.started {
		h := e.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // keep proxies from holding tokens back
		e.w.WriteHeader(http.StatusOK)
		e.started = true
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", data); err != nil {
		e.failed = true // the client is gone; its context ends shortly
		return
	}
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *sse) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(asAPIError(err).body())
	}
	e.event(b)
}

func (e *sse) done() { e.event([]byte("[DONE]")) }

// runStream streams one submitted request until the engine answers or ctx
// ends.
func (s *Server) runStream(w http.ResponseWriter, ctx context.Context, p *pending, buf *streamBuf, f streamFormat, rl *requestLog) {
	out := &sse{w: w}
	open := func() {
		if !out.started && f.opening != nil {
			out.send(f.opening())
		}
	}
	flush := func() {
		for _, pc := range buf.take() {
			open()
			out.send(f.delta(pc))
		}
	}
	for {
		select {
		case <-buf.notify:
			flush()
		case res := <-p.ch:
			p.done()
			if u := f.usage(res); u != nil {
				rl.promptTokens, rl.completionTokens = u.PromptTokens, u.CompletionTokens
			}
			if res.Err != nil {
				if ctx.Err() != nil {
					s.streamEnded(out, ctx, rl)
					return
				}
				e := engineError(res.Err)
				rl.err = res.Err.Error()
				if !out.started {
					writeError(w, e)
					return
				}
				flush()
				out.send(e.body())
				out.done()
				return
			}
			flush()
			open()
			for _, ev := range f.closing(res) {
				out.send(ev)
			}
			out.done()
			return
		case <-ctx.Done():
			p.abandon()
			s.streamEnded(out, ctx, rl)
			return
		}
	}
}

// streamEnded answers a stream whose context ended: an error status if
// nothing was sent yet, an error event otherwise (OpenAI clients raise it).
func (s *Server) streamEnded(out *sse, ctx context.Context, rl *requestLog) {
	e := s.ctxError(ctx, rl)
	if e == nil {
		return
	}
	rl.err = e.Message
	if !out.started {
		writeError(out.w, e)
		return
	}
	out.send(e.body())
	out.done()
}

// wait waits for a non-streaming result; ok is false when ctx ended first
// (the answer has then been written).
func (s *Server) wait(w http.ResponseWriter, ctx context.Context, p *pending, rl *requestLog) (lm.Result, bool) {
	select {
	case res := <-p.ch:
		p.done()
		if res.Err != nil && ctx.Err() != nil {
			if e := s.ctxError(ctx, rl); e != nil {
				rl.err = e.Message
				writeError(w, e)
			}
			return res, false
		}
		return res, true
	case <-ctx.Done():
		p.abandon()
		if e := s.ctxError(ctx, rl); e != nil {
			rl.err = e.Message
			writeError(w, e)
		}
		return lm.Result{}, false
	}
}

// fail answers e and notes it for the log.
func fail(w http.ResponseWriter, rl *requestLog, e *apiError) {
	rl.err = e.Message
	writeError(w, e)
}

// chatCompletions is POST /v1/chat/completions.
func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, rl *requestLog) {
	var req chatRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		fail(w, rl, e)
		return
	}
	in, e := parseChat(&req, s.cfg.Mode, s.defaults())
	if e != nil {
		fail(w, rl, e)
		return
	}
	rl.id, rl.mode, rl.stream = newID("chatcmpl-"), in.mode, in.params.stream
	prompter := planner.Prompter{Mode: in.mode, Format: s.cfg.Format, Chat: s.cfg.Chat}
	settings := inference.Settings{MaxPlanTokens: in.params.maxPlan, MaxTokens: in.params.maxTokens, Sampling: in.params.sampling}
	var buf *streamBuf
	var stream inference.Stream
	if in.params.stream {
		buf = newStreamBuf()
		stream = buf.add
	}
	ereq, err := inference.Request(prompter, settings, in.history, in.user, stream)
	if err != nil {
		fail(w, rl, badRequest("messages", "cannot build the prompt: %v", err))
		return
	}
	ereq.ID = rl.id
	ereq.LogProbs, ereq.TopLogProbs = in.logprobs, in.topLogprobs
	// OpenAI's stop strings end the answer; the plan has its own delimiter.
	last := &ereq.Phases[len(ereq.Phases)-1]
	last.Stop = append(append([]string(nil), last.Stop...), in.params.stops...)

	ctx, cancel := s.requestContext(r)
	defer cancel()
	p, ok := s.start(ctx, w, rl, ereq)
	if !ok {
		return
	}
	created := time.Now().Unix()
	if in.params.stream {
		s.runStream(w, ctx, p, buf, s.chatStream(rl.id, created, in), rl)
		return
	}
	res, ok := s.wait(w, ctx, p, rl)
	if !ok {
		return
	}
	ans := inference.FromResult(in.mode, res)
	rl.promptTokens, rl.completionTokens = ans.PromptTokens, ans.PlanTokens+ans.AnswerTokens
	if res.Err != nil {
		fail(w, rl, engineError(res.Err))
		return
	}
	msg := chatMessageOut{Role: planner.RoleAssistant, Content: ans.Answer}
	if in.mode.HasPlan() {
		msg.Plan, msg.PlanFinishReason = strp(ans.Plan), strp(ans.PlanFinish)
	}
	writeJSON(w, http.StatusOK, chatResponse{
		ID: rl.id, Object: "chat.completion", Created: created, Model: s.cfg.ModelID, Mode: in.mode,
		Choices: []chatChoice{{Message: msg, FinishReason: ans.Finish, Logprobs: chatLogprobsFor(in, res)}},
		Usage:   chatUsage(ans),
	})
}

// chatLogprobsFor is a chat choice's logprobs (nil unless asked for): the
// answer phase's tokens as content, the plan phase's as plan.
func chatLogprobsFor(in chatInput, res lm.Result) *chatLogprobs {
	if !in.logprobs || len(res.Phases) == 0 {
		return nil
	}
	lp := &chatLogprobs{Content: chatLogprobsOf(res.Phases[len(res.Phases)-1].LogProbs)}
	if in.mode.HasPlan() && len(res.Phases) > 1 {
		lp.Plan = chatLogprobsOf(res.Phases[0].LogProbs)
	}
	return lp
}

// completionLogprobsFor is a completion choice's logprobs (nil unless asked for).
func completionLogprobsFor(in completionInput, res lm.Result) *completionLogprobs {
	if !in.logprobs {
		return nil
	}
	var lps []lm.TokenLogProb
	for _, p := range res.Phases {
		lps = append(lps, p.LogProbs...)
	}
	return completionLogprobsOf(lps)
}

func chatUsage(a inference.Answer) usage {
	c := a.PlanTokens + a.AnswerTokens
	return usage{PromptTokens: a.PromptTokens, CompletionTokens: c, TotalTokens: a.PromptTokens + c, PlanTokens: a.PlanTokens}
}

// chatStream is the event format of a streaming chat completion.
func (s *Server) chatStream(id string, created int64, in chatInput) streamFormat {
	chunk := func(c chunkChoice) chatChunk {
		return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.cfg.ModelID, Mode: in.mode, Choices: []chunkChoice{c}}
	}
	return streamFormat{
		opening: func() any {
			return chunk(chunkChoice{Delta: chunkDelta{Role: planner.RoleAssistant, Content: strp("")}})
		},
		delta: func(p piece) any {
			d := chunkDelta{Content: strp(p.text)}
			if p.phase == phasePlan {
				d = chunkDelta{Plan: strp(p.text)}
			}
			return chunk(chunkChoice{Delta: d})
		},
		closing: func(res lm.Result) []any {
			ans := inference.FromResult(in.mode, res)
			// The token log-probabilities arrive with the last chunk: text
			// chunks are cut where stop strings allow, not at tokens.
			last := chunkChoice{FinishReason: strp(ans.Finish), Logprobs: chatLogprobsFor(in, res)}
			if in.mode.HasPlan() {
				last.PlanFinishReason = strp(ans.PlanFinish)
			}
			evs := []any{chunk(last)}
			if in.params.usage {
				u := chatUsage(ans)
				c := chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.cfg.ModelID, Mode: in.mode, Choices: []chunkChoice{}, Usage: &u}
				evs = append(evs, c)
			}
			return evs
		},
		usage: func(res lm.Result) *usage {
			u := chatUsage(inference.FromResult(in.mode, res))
			return &u
		},
	}
}

// completions is POST /v1/completions: the raw prompt continued in one
// phase, without chat template and without a plan.
func (s *Server) completions(w http.ResponseWriter, r *http.Request, rl *requestLog) {
	var req completionRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		fail(w, rl, e)
		return
	}
	in, e := parseCompletion(&req, s.defaults())
	if e != nil {
		fail(w, rl, e)
		return
	}
	rl.id, rl.mode, rl.stream = newID("cmpl-"), planner.Direct, in.params.stream
	ereq := lm.Request{
		ID:       rl.id,
		Phases:   []lm.Phase{{Prefix: in.prompt, MaxTokens: in.params.maxTokens, Stop: in.params.stops}},
		Sampling: in.params.sampling,
		LogProbs: in.logprobs, TopLogProbs: in.topLogprobs,
	}
	var buf *streamBuf
	if in.params.stream {
		buf = newStreamBuf()
		ereq.OnText = func(_ int, text string) { buf.add(phaseAnswer, text) }
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	p, ok := s.start(ctx, w, rl, ereq)
	if !ok {
		return
	}
	created := time.Now().Unix()
	resp := func(text string, finish *string, u *usage, lp *completionLogprobs) completionResponse {
		return completionResponse{ID: rl.id, Object: "text_completion", Created: created, Model: s.cfg.ModelID,
			Choices: []completionChoice{{Text: text, FinishReason: finish, Logprobs: lp}}, Usage: u}
	}
	if in.params.stream {
		s.runStream(w, ctx, p, buf, streamFormat{
			delta: func(pc piece) any { return resp(pc.text, nil, nil, nil) },
			closing: func(res lm.Result) []any {
				evs := []any{resp("", strp(completionFinish(res)), nil, completionLogprobsFor(in, res))}
				if in.params.usage {
					u := completionUsage(res)
					evs = append(evs, completionResponse{ID: rl.id, Object: "text_completion", Created: created, Model: s.cfg.ModelID,
						Choices: []completionChoice{}, Usage: &u})
				}
				return evs
			},
			usage: func(res lm.Result) *usage { u := completionUsage(res); return &u },
		}, rl)
		return
	}
	res, ok := s.wait(w, ctx, p, rl)
	if !ok {
		return
	}
	u := completionUsage(res)
	rl.promptTokens, rl.completionTokens = u.PromptTokens, u.CompletionTokens
	if res.Err != nil {
		fail(w, rl, engineError(res.Err))
		return
	}
	writeJSON(w, http.StatusOK, resp(res.Text(), strp(completionFinish(res)), &u, completionLogprobsFor(in, res)))
}

func completionFinish(res lm.Result) string {
	if len(res.Phases) == 0 {
		return string(lm.FinishError)
	}
	return string(res.Phases[len(res.Phases)-1].Finish)
}

func completionUsage(res lm.Result) usage {
	c := res.GeneratedTokens()
	return usage{PromptTokens: res.PromptTokens, CompletionTokens: c, TotalTokens: res.PromptTokens + c}
}
