package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnFailures is Options.MaxConnFailures when zero.
const DefaultMaxConnFailures = 20

// Cool-down of a server that failed to connect: it doubles with each failure
// in a row, so a dead node costs one probe per MaxCooldown while its healthy
// peers take the traffic, and a node that comes back is used again soon.
const (
	minCooldown = 250 * time.Millisecond
	// MaxCooldown is the longest a failing server is left out of the rotation.
	MaxCooldown = 30 * time.Second
)

// ErrUnreachable is wrapped by every error of a client that gave up because
// no server of its fleet could be reached (see Options.MaxConnFailures).
var ErrUnreachable = errors.New("no server reachable")

// endpoint is one server of the fleet and what we know of its health.
type endpoint struct {
	base string // without trailing slash or /v1

	mu        sync.Mutex
	fails     int       // connection failures in a row
	downUntil time.Time // left out of the rotation until then
	lastErr   error
}

// normalizeBase checks a base URL and strips a trailing slash and /v1.
func normalizeBase(raw string) (string, error) {
	base := strings.TrimRight(strings.TrimSpace(raw), "/")
	base = strings.TrimSuffix(base, "/v1")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("remote: base URL %q: want http://host[:port][/path]", raw)
	}
	return base, nil
}

// pick returns the server for the next attempt: the next one in round-robin
// order that is not cooling down after a connection failure, or, when all
// are, the one whose cool-down ends first (a request never waits for one).
func (c *Client) pick() *endpoint {
	n := len(c.endpoints)
	start := int((c.next.Add(1) - 1) % uint64(n))
	now := time.Now()
	var best *endpoint
	var bestUntil time.Time
	for i := range n {
		ep := c.endpoints[(start+i)%n]
		ep.mu.Lock()
		until := ep.downUntil
		ep.mu.Unlock()
		if !now.Before(until) {
			return ep
		}
		if best == nil || until.Before(bestUntil) {
			best, bestUntil = ep, until
		}
	}
	return best
}

// reached records that ep answered (any HTTP status but a gateway error):
// the server is up, whatever it thought of the request.
func (c *Client) reached(ep *endpoint) {
	ep.mu.Lock()
	ep.fails, ep.downUntil, ep.lastErr = 0, time.Time{}, nil
	ep.mu.Unlock()
}

// unreachable records a connection failure on ep, and gives up for good once
// every server has failed MaxConnFailures times in a row: a fleet that is
// gone would otherwise cost every remaining row all its retries.
func (c *Client) unreachable(ep *endpoint, err error) {
	ep.mu.Lock()
	ep.fails++
	ep.lastErr = err
	ep.downUntil = time.Now().Add(min(minCooldown<<min(ep.fails-1, 16), MaxCooldown))
	ep.mu.Unlock()
	if c.maxConnFails <= 0 {
		return
	}
	var last []string
	for _, e := range c.endpoints {
		e.mu.Lock()
		fails, lerr := e.fails, e.lastErr
		e.mu.Unlock()
		if fails < c.maxConnFails {
			return
		}
		last = append(last, fmt.Sprintf("%s: %v", e.base, lerr))
	}
	c.downOnce.Do(func() {
		what := "the server"
		if len(c.endpoints) > 1 {
			what = fmt.Sprintf("each of the %d servers", len(c.endpoints))
		}
		c.downErr = fmt.Errorf("remote: %w: %s failed %d connection attempts in a row (last: %s)",
			ErrUnreachable, what, c.maxConnFails, strings.Join(last, "; "))
		close(c.down)
	})
}

// isGatewayFailure reports statuses with which a proxy or load balancer says
// that it could not reach the server behind it: for the fleet's health they
// count as connection failures.
func isGatewayFailure(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusGatewayTimeout
}

// Down is closed when the client has given up because no server could be
// reached (see Options.MaxConnFailures); Err then says why. Callers running
// many requests watch it to stop at once instead of failing each request.
func (c *Client) Down() <-chan struct{} { return c.down }

// Err is nil while the client works, and the ErrUnreachable error once it
// has given up.
func (c *Client) Err() error {
	select {
	case <-c.down:
		return c.downErr
	default:
		return nil
	}
}

// BaseURLs lists the servers the client sends requests to, in rotation order.
func (c *Client) BaseURLs() []string {
	out := make([]string, len(c.endpoints))
	for i, ep := range c.endpoints {
		out[i] = ep.base
	}
	return out
}

// Probe is the result of asking one server for its models.
type Probe struct {
	URL    string
	Models []string
	Err    error
}

// ProbeAll asks every server for its model list (with the client's retries,
// so a server that is still starting gets the usual grace), so that a
// command can say at start-up which servers of a fleet answer. It does not
// change the servers' health as seen by the rotation.
func (c *Client) ProbeAll(ctx context.Context) []Probe {
	out := make([]Probe, len(c.endpoints))
	var wg sync.WaitGroup
	for i, ep := range c.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].URL = ep.base
			retries := c.maxRetries
			if retries == 0 {
				retries = -1 // Options' "none"; 0 there means the default
			}
			one, err := New(Options{BaseURL: ep.base, APIKey: c.apiKey, Timeout: c.timeout,
				MaxRetries: retries, Backoff: c.backoff, MaxConnFailures: -1, HTTPClient: c.http})
			if err == nil {
				out[i].Models, err = one.Models(ctx)
			}
			out[i].Err = err
		}()
	}
	wg.Wait()
	return out
}

// rotationState is the part of Client that spreads requests over servers;
// it is embedded so that the fields stay together and out of the way of the
// request-building code.
type rotationState struct {
	endpoints    []*endpoint
	next         atomic.Uint64 // round-robin position
	maxConnFails int
	down         chan struct{} // closed when the client gave up
	downOnce     sync.Once
	downErr      error
}
