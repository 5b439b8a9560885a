package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planServer is a fake OpenAI-compatible server that answers every
// extraction request (chat or plain completion) with the same plan.
func planServer(t *testing.T, plan string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _ := json.Marshal(plan)
		switch r.URL.Path {
		case "/v1/models":
			fmt.Fprint(w, `{"object":"list","data":[{"id":"fake","object":"model"}]}`)
		case "/v1/completions":
			fmt.Fprintf(w, `{"id":"x","object":"text_completion","model":"fake","choices":[{"index":0,"text":%s,"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":20}}`, q)
		default:
			fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":20}}`, q)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestExtractScoreGain(t *testing.T) {
	srv := planServer(t, "```python\ndef solve(question):\n    numbers = parse_numbers(question)\n    return add_all(numbers)\n```")
	dir := t.TempDir()
	in := writeCorpus(t, dir, 4)
	base := []string{"codeplan", "-q", "extract", "--backend", "openai", "--base-url", srv.URL + "/v1", "--model", "fake",
		"--input", in, "--concurrency", "2", "--score-model", "tiny", "--threads", "1"}
	out := filepath.Join(dir, "plans.jsonl")
	sumPath := filepath.Join(dir, "sum.json")
	if code := run(append(base, "--output", out, "--score-gain", "--summary", sumPath)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	data, _ := os.ReadFile(out)
	if countLines(out) != 4 || strings.Count(string(data), `"gain_nats":`) != 4 || strings.Count(string(data), `"loglik_without_plan":`) != 4 {
		t.Errorf("rows lack gains: %.400s", data)
	}
	var sum struct {
		Gain struct {
			Rows         int
			Mean, Q1, Q3 float64
		} `json:"gain_accepted"`
	}
	raw, _ := os.ReadFile(sumPath)
	if err := json.Unmarshal(raw, &sum); err != nil || sum.Gain.Rows != 4 || sum.Gain.Q1 > sum.Gain.Q3 {
		t.Errorf("summary gain %+v (%v): %s", sum.Gain, err, raw)
	}
	// --min-gain above every gain rejects every row as low_gain.
	out2 := filepath.Join(dir, "strict.jsonl")
	if code := run(append(base, "--output", out2, "--min-gain", "100")); code != 0 {
		t.Fatalf("--min-gain: exit %d", code)
	}
	rej, _ := os.ReadFile(rejectsPath(out2))
	if countLines(out2) != 0 || strings.Count(string(rej), `"reason":"low_gain"`) != 4 {
		t.Errorf("--min-gain 100: %d accepted, rejects %.300s", countLines(out2), rej)
	}
	// A fleet backend has no local model to score with.
	bad := []string{"codeplan", "-q", "extract", "--backend", "openai", "--base-url", srv.URL + "/v1", "--model", "fake",
		"--input", in, "--output", filepath.Join(dir, "x.jsonl"), "--score-gain"}
	if code := run(bad); code != exitUsage {
		t.Errorf("--score-gain without --score-model on openai: exit %d, want %d", code, exitUsage)
	}
}
