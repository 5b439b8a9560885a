package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/extract"
)

// TestExtractSummaryPrediction checks that a local extract run records what
// codeplan bench predicts for its token counts and the achieved ratio, and
// that --predict=false leaves it out.
func TestExtractSummaryPrediction(t *testing.T) {
	dir := t.TempDir()
	in := writeCorpus(t, dir, 6)
	for _, tc := range []struct {
		name    string
		predict bool
	}{{"on", true}, {"off", false}} {
		out := filepath.Join(dir, tc.name+".jsonl")
		sumPath := filepath.Join(dir, tc.name+".summary.json")
		args := extractArgs(in, out, "--summary", sumPath)
		if !tc.predict {
			args = append(args, "--predict=false")
		}
		if code := run(args); code != 0 {
			t.Fatalf("%s: exit %d", tc.name, code)
		}
		b, err := os.ReadFile(sumPath)
		if err != nil {
			t.Fatal(err)
		}
		var sum struct {
			Processed int64 `json:"processed"`
			Generated int64 `json:"generated_tokens"`
			Prompt    int64 `json:"prompt_tokens"`
			Predicted *struct {
				Parallel int     `json:"parallel"`
				Ctx      int     `json:"ctx"`
				PP       int     `json:"prompt_tokens_per_row"`
				TG       int     `json:"generated_tokens_per_row"`
				Rows     float64 `json:"predicted_rows_s"`
				Achieved float64 `json:"achieved_rows_s"`
				Ratio    float64 `json:"achieved_ratio"`
				PPSpeed  float64 `json:"bench_pp_tok_s"`
				TGSpeed  float64 `json:"bench_tg_tok_s"`
			} `json:"bench_prediction"`
		}
		if err := json.Unmarshal(b, &sum); err != nil {
			t.Fatal(err)
		}
		if !tc.predict {
			if sum.Predicted != nil {
				t.Errorf("--predict=false still predicted: %s", b)
			}
			continue
		}
		p := sum.Predicted
		if p == nil {
			t.Fatalf("no bench_prediction in %s", b)
		}
		if p.Ctx < 8192 || p.Ctx >= 8192+5*256 { // llama.cpp rounds each of the 5 sequences' share up to 256
			t.Errorf("prediction on a context of %d, the run used --ctx 8192", p.Ctx)
		}
		if p.Parallel != 4 || p.PP != int(sum.Prompt/sum.Processed) || p.TG != int(sum.Generated/sum.Processed) {
			t.Errorf("prediction shape %+v, run %d rows, %d prompt and %d generated tokens", *p, sum.Processed, sum.Prompt, sum.Generated)
		}
		if p.Rows <= 0 || p.Achieved <= 0 || p.PPSpeed <= 0 || p.TGSpeed <= 0 {
			t.Errorf("prediction %+v", *p)
		}
		if d := p.Ratio - p.Achieved/p.Rows; d > 1e-9 || d < -1e-9 {
			t.Errorf("ratio %g is not achieved/predicted = %g", p.Ratio, p.Achieved/p.Rows)
		}
	}
}

// TestExtractSummaryPrintsPrediction checks that the printed summary shows
// the prediction and the achieved ratio (a merge once dropped the line while
// the JSON kept it).
func TestExtractSummaryPrintsPrediction(t *testing.T) {
	var b strings.Builder
	sum := extract.Summary{Predicted: &extract.Prediction{Parallel: 8, Context: 36864, PromptTokens: 700, GenTokens: 64,
		RowsPerSecond: 2.5, AchievedRowsSec: 2.0, AchievedPerPredicted: 0.8, PromptTokPerSec: 1400, GenTokPerSec: 450}}
	printExtractSummary(&b, sum, extract.Config{Output: "plans.jsonl"})
	if !strings.Contains(b.String(), "bench predicts    2.50 rows/s at --parallel 8, --ctx 36864") || !strings.Contains(b.String(), "achieved 0.80x") {
		t.Errorf("summary without the prediction:\n%s", b.String())
	}
	b.Reset()
	printExtractSummary(&b, extract.Summary{}, extract.Config{Output: "plans.jsonl"})
	if strings.Contains(b.String(), "bench predicts") {
		t.Errorf("a prediction line without a prediction:\n%s", b.String())
	}
}
