package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestMain lets tests run the CLI as a child process (to kill it mid-run):
// with CODEPLAN_TEST_MAIN=1 the test binary behaves as codeplan itself.
func TestMain(m *testing.M) {
	if os.Getenv("CODEPLAN_TEST_MAIN") == "1" {
		setSignalHook()
		os.Exit(run(append([]string{"codeplan"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

// setSignalHook makes the child process signal itself once it has
// collected CODEPLAN_TEST_SIGNAL_AFTER rows: SIGKILL (CODEPLAN_TEST_SIGNAL
// =KILL) dies there; SIGINT (=INT) waits until the run has seen the
// interrupt, so that it lands mid-run every time.
func setSignalHook() {
	after, err := strconv.ParseInt(os.Getenv("CODEPLAN_TEST_SIGNAL_AFTER"), 10, 64)
	if err != nil {
		return
	}
	sig := syscall.SIGINT
	if os.Getenv("CODEPLAN_TEST_SIGNAL") == "KILL" {
		sig = syscall.SIGKILL
	}
	testRowHook = func(rows int64, soft context.Context) {
		if rows != after {
			return
		}
		syscall.Kill(os.Getpid(), sig)
		<-soft.Done()
	}
}

// writeCorpus writes n (prompt, response) rows with ids r000.. to a JSONL file.
func writeCorpus(t *testing.T, dir string, n int) string {
	t.Helper()
	p := filepath.Join(dir, "corpus.jsonl")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < n; i++ {
		row := map[string]string{
			"id":       fmt.Sprintf("r%03d", i),
			"question": fmt.Sprintf("What is %d plus %d?", i, 2*i),
			"answer":   fmt.Sprintf("Add the numbers: %d + %d = %d. The answer is %d.", i, 2*i, 3*i, 3*i),
		}
		b, _ := json.Marshal(row)
		f.Write(append(b, '\n'))
	}
	return p
}

// readIDs returns the ids of every complete JSONL line of the files, in order.
func readIDs(t *testing.T, paths ...string) []string {
	t.Helper()
	var ids []string
	for _, p := range paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var row struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: bad line %q: %v", p, sc.Text(), err)
			}
			ids = append(ids, row.ID)
		}
		f.Close()
	}
	return ids
}

func countLines(p string) int {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n := 0
	for _, b := range data {
		if b == '\n' {
			n++
		}
	}
	return n
}
