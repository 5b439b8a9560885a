package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeFleetServer is an OpenAI-compatible server that accepts every plan.
// After die requests (0 = never) it stops as a crashed node does: the
// listener closes (new connections are refused) and open ones are dropped.
func fakeFleetServer(t *testing.T, die int32) *httptest.Server {
	var calls atomic.Int32
	var srv *httptest.Server
	var once sync.Once
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model"}]}`)
			return
		}
		n := calls.Add(1)
		if die > 0 && n > die {
			once.Do(func() { srv.Listener.Close() })
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"`+
			"```python\\ndef solve(question):\\n    numbers = parse_numbers(question)\\n    return add_all(numbers)\\n```"+
			`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":20}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestExtractStopsWhenServerDies: a server that dies mid-run stops the run
// with one clear error after a few connection failures, instead of every
// remaining row spending all its retries; the rows done stay done and a rerun
// against a live server does exactly the rest.
func TestExtractStopsWhenServerDies(t *testing.T) {
	dir := t.TempDir()
	const n, die, concurrency = 300, 20, 4
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans.jsonl")
	sumPath := filepath.Join(dir, "summary.json")
	srv := fakeFleetServer(t, die)
	args := func(url string) []string {
		return []string{"extract", "--backend", "openai", "--base-url", url + "/v1", "--model", "fake-model",
			"--input", in, "--output", out, "--concurrency", fmt.Sprint(concurrency), "--retries", "3",
			"--max-connection-failures", "6", "--summary", sumPath}
	}
	code, stderr := runChild(t, args(srv.URL)...)
	if code != exitRuntime {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitRuntime, stderr)
	}
	if strings.Count(stderr, "no server reachable") != 1 || !strings.Contains(stderr, "rerun the same command") {
		t.Errorf("want one clear error naming the cause; stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "row failed") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("per-row failures or a crash trace on stderr:\n%s", stderr)
	}
	done := len(readIDs(t, out, rejectsPath(out)))
	if done != die {
		t.Errorf("%d rows kept, want the %d the server answered", done, die)
	}
	var sum struct {
		Processed, Failed int64
		Interrupted       bool
	}
	data, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &sum)
	// Only the rows in flight when the client gave up were tried after the
	// server died; the other ~280 were never sent.
	if sum.Processed != die || sum.Failed > concurrency || !sum.Interrupted {
		t.Errorf("summary %s", data)
	}

	live := fakeFleetServer(t, 0)
	if code, stderr := runChild(t, args(live.URL)...); code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, stderr)
	}
	checkExactlyOnce(t, n, out)
}

// startServe starts `codeplan serve tiny` on a free port and returns its
// process and base URL.
func startServe(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--log-format", "json", "serve", "tiny", "--port", "0", "--alias", "tiny",
		"--threads", "1", "--parallel", "2", "--ctx", "4096", "--mode", "direct")
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	stderr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Message, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "serving" {
				urls <- line.URL
			}
		}
	}()
	select {
	case u := <-urls:
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatal("codeplan serve did not start within 60s")
	}
	return nil, ""
}

// TestFleetRouteSurvivesServerDeath is the fleet route end to end: one
// extract spreads rows over two `codeplan serve` processes; one is killed
// mid-run, the run finishes on the other, and every row is there once.
func TestFleetRouteSurvivesServerDeath(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans.jsonl")
	a, urlA := startServe(t)
	_, urlB := startServe(t)

	result := make(chan int, 1)
	go func() {
		result <- run([]string{"codeplan", "-q", "extract", "--backend", "openai", "--base-url", urlA, "--base-url", urlB,
			"--model", "tiny", "--input", in, "--output", out, "--concurrency", "4", "--max-plan-tokens", "16", "--retries", "3"})
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for countLines(out)+countLines(rejectsPath(out)) < 6 {
		if time.Now().After(deadline) {
			t.Fatal("extract wrote too little within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.Process.Signal(syscall.SIGKILL)
	killedAt := countLines(out) + countLines(rejectsPath(out))
	if code := <-result; code != 0 {
		t.Fatalf("extract exit %d after one server died", code)
	}
	if killedAt >= n {
		t.Skipf("the run finished before a server could be killed (%d rows)", killedAt)
	}
	checkExactlyOnce(t, n, out)
}
