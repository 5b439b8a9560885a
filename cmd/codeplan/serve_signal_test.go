package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeSecondSignalStopsAtOnce: the first SIGINT drains (requests in
// flight get --grace to finish); a second one used to be ignored, and the
// server waited the whole grace period. Now it stops at once with the
// interrupted status. The server is started with SIGINT ignored, as a
// shell does for a background job, which is how the campaign saw it.
func TestServeSecondSignalStopsAtOnce(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command("bash", "-c", `trap "" INT; exec "$0" "$@"`, os.Args[0], "--log-format", "json", "serve", "tiny",
		"--port", "0", "--threads", "1", "--parallel", "1", "--ctx", "4096", "--mode", "direct", "--grace", "60s")
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill() }()
	urls := make(chan string, 1)
	var mu sync.Mutex
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			var line struct{ Message, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "serving" {
				urls <- line.URL
			}
		}
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	// Requests that keep the server busy well past the test's patience: a
	// random model may end a reply early, so many of them, queued.
	for i := 0; i < 48; i++ {
		go http.Post(url+"/chat/completions", "application/json",
			strings.NewReader(`{"model":"tiny","max_tokens":2000,"messages":[{"role":"user","content":"count"}]}`))
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		mu.Lock()
		t.Fatalf("serve still running 15 s after the second SIGINT:\n%s", logs.String())
	}
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || took > 10*time.Second {
		t.Errorf("second SIGINT: exit %d after %v, want %d within seconds:\n%s", code, took, exitInterrupted, logs.String())
	}
	if strings.Contains(logs.String(), `"in_flight":0`) || !strings.Contains(logs.String(), `"in_flight"`) {
		t.Errorf("no requests in flight at the first SIGINT; the test needs some:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "panic:") || strings.Contains(logs.String(), "goroutine ") {
		t.Errorf("crash trace:\n%s", logs.String())
	}
}
