package remote

import (
	"context"
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

// countingServer answers every chat request with okBody and counts them.
func countingServer(t *testing.T, n *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, okBody)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deadURL returns the address of a server that has stopped: connecting to
// it is refused.
func deadURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// fleetClient makes a client of the servers at urls (the first as BaseURL,
// the rest as BaseURLs), with model "m" unless opts names one and a 1 ms
// backoff unless opts sets one.
func fleetClient(t *testing.T, urls []string, opts Options) *Client {
	t.Helper()
	opts.BaseURL, opts.BaseURLs = urls[0], urls[1:]
	if opts.Model == "" {
		opts.Model = "m"
	}
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundRobin(t *testing.T) {
	var a, b atomic.Int32
	sa, sb := countingServer(t, &a), countingServer(t, &b)
	c := fleetClient(t, []string{sa.URL + "/v1", sb.URL}, Options{})
	if got := c.BaseURLs(); len(got) != 2 || got[0] != sa.URL || got[1] != sb.URL {
		t.Fatalf("BaseURLs %v", got)
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
			t.Fatal(err)
		}
	}
	if a.Load() != 5 || b.Load() != 5 {
		t.Errorf("requests per server %d and %d, want 5 and 5", a.Load(), b.Load())
	}
}

// TestFailoverSkipsDeadServer: with one of two servers gone, every call
// succeeds on the other, and the dead one is left out of the rotation while
// it cools down instead of costing every other request a retry.
func TestFailoverSkipsDeadServer(t *testing.T) {
	var live atomic.Int32
	srv := countingServer(t, &live)
	var attempts atomic.Int32
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		attempts.Add(1)
		return tr.RoundTrip(r)
	})}
	c := fleetClient(t, []string{deadURL(t), srv.URL}, Options{MaxRetries: 3, HTTPClient: hc, MaxConnFailures: 2})
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if live.Load() != 40 {
		t.Errorf("live server answered %d requests, want 40", live.Load())
	}
	// The dead server gets the first attempt or so, then cools down.
	if dead := attempts.Load() - 40; dead > 10 {
		t.Errorf("%d attempts went to the dead server", dead)
	}
	if c.Err() != nil {
		t.Errorf("gave up although one server answers: %v", c.Err())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestGivesUpWhenEveryServerIsDown: after MaxConnFailures connection
// failures in a row on every server, calls fail with ErrUnreachable at once,
// Down is closed, and no further request is sent.
func TestGivesUpWhenEveryServerIsDown(t *testing.T) {
	var attempts atomic.Int32
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		attempts.Add(1)
		return nil, errors.New("dial tcp: connection refused")
	})}
	c := fleetClient(t, []string{"http://gpu1:8000", "http://gpu2:8000"}, Options{MaxRetries: 1000, HTTPClient: hc, MaxConnFailures: 3})
	_, err := c.Chat(context.Background(), userMsg, Params{})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v, want ErrUnreachable", err)
	}
	for _, want := range []string{"each of the 2 servers", "3 connection attempts in a row", "http://gpu1:8000: ", "http://gpu2:8000: ", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := attempts.Load(); n != 6 {
		t.Errorf("%d attempts before giving up, want 3 per server = 6", n)
	}
	select {
	case <-c.Down():
	default:
		t.Error("Down not closed")
	}
	if _, err := c.Chat(context.Background(), userMsg, Params{}); !errors.Is(err, ErrUnreachable) || attempts.Load() != 6 {
		t.Errorf("after giving up: %v, %d attempts", err, attempts.Load())
	}
}

// TestOneLiveServerNeverGivesUp: failures on one server do not add up to
// giving up while another server answers.
func TestOneLiveServerNeverGivesUp(t *testing.T) {
	var live atomic.Int32
	srv := countingServer(t, &live)
	c := fleetClient(t, []string{deadURL(t), srv.URL}, Options{MaxConnFailures: 1})
	for i := 0; i < 20; i++ {
		if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if c.Err() != nil {
		t.Error(c.Err())
	}
}

// TestAnswerResetsTheStreak: a server that answers between failures is up,
// so the failures are not "in a row".
func TestAnswerResetsTheStreak(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			// Drop the connection without an answer.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := fleetClient(t, []string{srv.URL}, Options{MaxConnFailures: 2, MaxRetries: 3})
	for i := 0; i < 10; i++ {
		if _, err := c.Chat(context.Background(), userMsg, Params{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// TestGatewayErrorsCountServerErrorsDoNot: 502/504 mean a proxy could not
// reach the server; a 500 is an answer from a server that is up.
func TestGatewayErrorsCountServerErrorsDoNot(t *testing.T) {
	for _, tc := range []struct {
		status  int
		giveUp  bool
		summary string
	}{{http.StatusBadGateway, true, "502"}, {http.StatusGatewayTimeout, true, "504"}, {http.StatusInternalServerError, false, "500"}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream", tc.status)
		}))
		c := fleetClient(t, []string{srv.URL}, Options{MaxConnFailures: 2, MaxRetries: 4})
		_, err := c.Chat(context.Background(), userMsg, Params{})
		if got := errors.Is(err, ErrUnreachable); got != tc.giveUp {
			t.Errorf("%s: gave up %v, want %v (%v)", tc.summary, got, tc.giveUp, err)
		}
		srv.Close()
	}
}

// TestGiveUpWakesWaitingRetries: a call waiting out its backoff returns as
// soon as the client gives up, not after the backoff.
func TestGiveUpWakesWaitingRetries(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if calls.Add(1) == 2 {
			<-release // the second call's first attempt fails only when told
		}
		return nil, errors.New("connection refused")
	})}
	c := fleetClient(t, []string{"http://gpu1:8000"}, Options{MaxRetries: 5, HTTPClient: hc, MaxConnFailures: 2, Backoff: time.Hour, Concurrency: 2})
	first := make(chan error, 1)
	go func() { _, err := c.Chat(context.Background(), userMsg, Params{}); first <- err }()
	for calls.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	go c.Chat(context.Background(), userMsg, Params{})
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release) // second failure in a row: the client gives up
	select {
	case err := <-first:
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("waiting call: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call waiting for its retry was not woken when the client gave up")
	}
}

func TestProbeAll(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"llama"}]}`)
	}))
	defer srv.Close()
	dead := deadURL(t)
	c := fleetClient(t, []string{srv.URL, dead}, Options{MaxRetries: 5})
	p := c.ProbeAll(context.Background())
	if len(p) != 2 || p[0].Err != nil || len(p[0].Models) != 1 || p[0].Models[0] != "llama" {
		t.Errorf("live probe %+v", p[0])
	}
	if p[1].URL != dead || p[1].Err == nil {
		t.Errorf("dead probe %+v", p[1])
	}
}

func TestNewChecksEveryURL(t *testing.T) {
	if _, err := New(Options{BaseURL: "http://a:1", BaseURLs: []string{"ftp://b"}}); err == nil || !strings.Contains(err.Error(), "ftp://b") {
		t.Errorf("bad second URL: %v", err)
	}
	c, err := New(Options{BaseURLs: []string{"http://a:1/v1/", "http://b:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BaseURLs(); len(got) != 2 || got[0] != "http://a:1" {
		t.Errorf("BaseURLs %v", got)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no URL accepted")
	}
}
