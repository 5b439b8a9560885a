package extract

import (
	"fmt"

	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/lm"
)

// Measure runs one batched benchmark of parallel sequences with prompt
// and gen tokens each (engine.MeasureBatched on a local model's context,
// see local.Model.Measure).
type Measure func(parallel, prompt, gen int) (lm.BatchedResult, error)

// Prediction is what `codeplan bench` predicts for a run's token counts, and
// how the run compares: a ratio well below 1 means something slowed the run
// (other load on the machine, rows of very uneven length, a slow writer); above
// 1 usually means the prefix cache saved prompt processing.
type Prediction struct {
	Parallel             int     `json:"parallel"`
	Context              int     `json:"ctx"`                      // the run's context, which the benchmark ran on
	PromptTokens         int     `json:"prompt_tokens_per_row"`    // mean over the run's rows
	GenTokens            int     `json:"generated_tokens_per_row"` // mean over the run's rows
	PromptTokPerSec      float64 `json:"bench_pp_tok_s"`
	GenTokPerSec         float64 `json:"bench_tg_tok_s"`
	RowsPerSecond        float64 `json:"predicted_rows_s"`
	AchievedRowsSec      float64 `json:"achieved_rows_s"`
	AchievedPerPredicted float64 `json:"achieved_ratio"`
}

// Predict measures, with measure (on the run's own context of ctx tokens, so
// that attention spans as many cells as in the run), one batched benchmark at
// the run's shape
// (parallel sequences, each with the run's mean prompt and generated token
// counts; see engine.MeasureBatched) and compares the run with it. A batch
// of parallel rows takes the benchmark's prompt time plus its generation
// time, so the predicted rate is parallel / (T_PP + T_TG) rows per second.
// The context measured must not be in use: close the engine that drove the
// run first.
func Predict(measure Measure, ctx, parallel int, st pipeline.Stats) (Prediction, error) {
	if st.Processed == 0 || st.Elapsed <= 0 {
		return Prediction{}, fmt.Errorf("predict: no rows processed")
	}
	pp := int(st.PromptTok / st.Processed)
	tg := int(st.Tokens / st.Processed)
	if pp <= 0 || tg <= 0 {
		return Prediction{}, fmt.Errorf("predict: the run has no token counts")
	}
	r, err := measure(parallel, pp, tg)
	if err != nil {
		return Prediction{}, err
	}
	p := Prediction{Parallel: parallel, Context: ctx, PromptTokens: pp, GenTokens: tg,
		PromptTokPerSec: r.PromptTokensPerSecond(), GenTokPerSec: r.GenTokensPerSecond(),
		RowsPerSecond: float64(parallel) / (r.PromptTime + r.GenTime).Seconds(), AchievedRowsSec: st.RowsPerSecond()}
	p.AchievedPerPredicted = p.AchievedRowsSec / p.RowsPerSecond
	return p, nil
}
