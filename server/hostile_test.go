package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLongRunMessage reproduces issue 9 item 1 against the server: one
// message of 40,000+ 'A's segfaulted the tokenizer and took the whole
// server down. Now it is a 400 context_length_exceeded, and the server
// answers the next request. The body limit is raised so the message really
// reaches the engine.
func TestLongRunMessage(t *testing.T) {
	ts := startServer(t, 1, 256, func(c *Config) { c.MaxBody = 4 << 20 })
	chat := ts.url + "/v1/chat/completions"
	for _, n := range []int{40_000, 1_000_000} {
		for _, ch := range []string{"A", " ", "="} {
			body := `{"messages":[{"role":"user","content":"` + strings.Repeat(ch, n) + `"}]}`
			status, _, resp := post(t, "POST", chat, body, nil)
			if status != http.StatusBadRequest {
				t.Fatalf("%d x %q: status %d: %s", n, ch, status, resp)
			}
			checkErrorBody(t, resp, "messages", "context_length_exceeded")
		}
	}
	status, _, resp := post(t, "POST", chat, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`, nil)
	if status != http.StatusOK {
		t.Fatalf("request after the long ones: %d %s", status, resp)
	}
	if status, _, _ := post(t, "GET", ts.url+"/health", "", nil); status != http.StatusOK {
		t.Fatalf("health %d", status)
	}
}

// TestSamplingFieldsNamed: bad sampling values are 400s that name the JSON
// field, never a Go struct (issue 9 item 12: "samplingFields.top_p").
func TestSamplingFieldsNamed(t *testing.T) {
	ts := startServer(t, 1, 256, nil)
	chat := ts.url + "/v1/chat/completions"
	user := `"messages":[{"role":"user","content":"hi"}]`
	for _, tt := range []struct{ extra, param string }{
		{`"top_p":7`, "top_p"},
		{`"top_p":"high"`, "top_p"},
		{`"temperature":1e400`, "temperature"},
		{`"temperature":-0.5`, "temperature"},
		{`"top_k":-1`, "top_k"},
		{`"top_k":1.5`, "top_k"},
		{`"top_k":4294967297`, "top_k"},
		{`"min_p":2`, "min_p"},
		{`"repeat_penalty":1e39`, "repeat_penalty"},
		{`"frequency_penalty":"x"`, "frequency_penalty"},
		{`"seed":"x"`, "seed"},
	} {
		status, _, body := post(t, "POST", chat, "{"+user+","+tt.extra+"}", nil)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d: %s", tt.extra, status, body)
			continue
		}
		checkErrorBody(t, body, tt.param, "")
		for _, leak := range []string{"samplingFields", "float64", "int64", "Go struct", "{"} {
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if strings.Contains(e.Error.Message, leak) {
				t.Errorf("%s: message %q shows %q", tt.extra, e.Error.Message, leak)
			}
		}
	}
}

// trickle sends raw HTTP bytes one chunk at a time, pausing between
// chunks, and returns what the server answered (or the read error).
func trickle(t *testing.T, addr string, chunks []string, pause time.Duration) (string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range chunks {
			if _, err := io.WriteString(conn, c); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
}

// TestSlowBodyCutOff (issue 9 item 10): a body that trickles in is cut off
// at BodyTimeout with a 408, instead of holding a handler open for as long
// as the client likes.
func TestSlowBodyCutOff(t *testing.T) {
	ts := startServer(t, 1, 256, func(c *Config) { c.BodyTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(ts.url, "http://")
	body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`
	head := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	chunks := []string{head}
	for _, c := range body {
		chunks = append(chunks, string(c))
	}
	start := time.Now()
	got, err := trickle(t, addr, chunks, 100*time.Millisecond) // the body would take 6 s
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if !strings.HasPrefix(got, "408 ") || !strings.Contains(got, "request_timeout") {
		t.Fatalf("answer %q, want 408 request_timeout", got)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Errorf("cut off only after %v", waited)
	}
	// The same body sent at once still works: the deadline is per request.
	if status, _, b := post(t, "POST", ts.url+"/v1/chat/completions", body, nil); status != http.StatusOK {
		t.Fatalf("normal request: %d %s", status, b)
	}
}

// TestSlowHeadersCutOff: headers that trickle in are dropped at
// HeaderTimeout (the connection closes without a handler running).
func TestSlowHeadersCutOff(t *testing.T) {
	ts := startServer(t, 1, 256, func(c *Config) { c.HeaderTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(ts.url, "http://")
	var chunks []string
	for _, c := range "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 60) + "\r\n\r\n" {
		chunks = append(chunks, string(c))
	}
	start := time.Now()
	got, err := trickle(t, addr, chunks, 100*time.Millisecond)
	if err == nil && strings.HasPrefix(got, "200 ") {
		t.Fatalf("slow headers were served: %q", got)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Errorf("cut off only after %v", waited)
	}
}
