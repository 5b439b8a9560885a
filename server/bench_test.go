package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServe measures end-to-end throughput over HTTP (JSON in and out,
// codeplan mode: a plan of up to 16 tokens, an answer of up to 32) with 1
// and with 16 concurrent clients on a server decoding 16 sequences
// together. The gap between the two is what continuous batching buys.
func BenchmarkServe(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts := startServer(b, 16, 512, func(c *Config) { c.Queue = 64 })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			var next, tokens atomic.Int64
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						n, err := benchRequest(client, ts.url, fmt.Sprintf("client %d, question %d: how do I sort a list?", c, i))
						if err != nil {
							failed.Store(err)
							return
						}
						tokens.Add(int64(n))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed, "req/s")
			b.ReportMetric(float64(tokens.Load())/elapsed, "tokens/s")
		})
	}
}

// benchRequest sends one chat request and returns its completion tokens.
func benchRequest(c *http.Client, url, user string) (int, error) {
	body, _ := json.Marshal(map[string]any{
		"messages":        []map[string]string{{"role": "user", "content": user}},
		"mode":            "codeplan",
		"max_plan_tokens": 16,
		"max_tokens":      32,
		"temperature":     0,
	})
	resp, err := c.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out chatResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, err
	}
	return out.Usage.CompletionTokens, nil
}
