package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/internal/version"
	"github.com/tidwall/gjson"
)

// File names the report writes inside an eval folder, beside
// evaluate.ResultsFile.
const (
	ReportFile  = "report.md"
	ChartFile   = "report.png"
	SummaryFile = "summary.json"
)

// Report is the evaluation report built from every row of a results file,
// so that a resumed run (or several merged shards) reports the whole
// benchmark, not just the last run.
type Report struct {
	// Bench names the benchmark in the title.
	Bench string
	// Models and Formats are the distinct model (with "+ LoRA" when one
	// was applied) and format values found in the rows; more than one
	// means the folder mixes runs of different settings.
	Models  []string
	Formats []string
	// Runs are the distinct settings that made the rows (model
	// fingerprint, adapter, format, sampling, seed...), as recorded in each
	// row; more than one means the folder mixes runs.
	Runs []dataset.Settings
	// Rows and Items count the rows and the distinct items; Errors the
	// rows that could not run (evaluate.Row.Error).
	Rows, Items, Errors int
	// Summary is accuracy per mode and per step count (package report).
	Summary Summary
	// ByTask is accuracy per mode and task (see evaluate.Row.Task), in Summary's
	// mode order and with tasks sorted by name.
	ByTask []TaskTally
}

// TaskTally counts one mode's results on the items of one task.
type TaskTally struct {
	Mode, Task string
	N, Correct int
}

// NewReport summarizes rows. Rows are put in benchmark order first (by
// Index), so that modes appear as direct, nlplan, codeplan whatever order
// they finished in.
func NewReport(bench string, rows []evaluate.Row) Report {
	rows = slices.Clone(rows)
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Index != rows[j].Index {
			return rows[i].Index < rows[j].Index
		}
		return rows[i].ID < rows[j].ID
	})
	rep := Report{Bench: bench, Rows: len(rows)}
	results := make([]Result, len(rows))
	items := map[string]bool{}
	models, formats := map[string]bool{}, map[string]bool{}
	tallies := map[string]map[string]*TaskTally{}
	for i, r := range rows {
		results[i] = Result{Mode: string(r.Mode), ItemID: r.ItemID, Steps: r.Steps, Correct: r.Correct,
			Strict: r.StrictCorrect, F1: r.F1, Tokens: r.PlanTokens + r.AnswerTokens, Seconds: r.Seconds, Error: r.Error != ""}
		items[r.ItemID] = true
		if r.Error != "" {
			rep.Errors++
		}
		model := r.Model
		if r.LoRA != "" {
			model += " + " + r.LoRA
		}
		if model != "" {
			models[model] = true
		}
		if r.Format != "" {
			formats[string(r.Format)] = true
		}
		task := r.Task
		if task == "" {
			task = string(r.Kind)
		}
		byTask := tallies[string(r.Mode)]
		if byTask == nil {
			byTask = map[string]*TaskTally{}
			tallies[string(r.Mode)] = byTask
		}
		t := byTask[task]
		if t == nil {
			t = &TaskTally{Mode: string(r.Mode), Task: task}
			byTask[task] = t
		}
		t.N++
		if r.Correct {
			t.Correct++
		}
	}
	rep.Items = len(items)
	runSeen := map[string]bool{}
	for _, r := range rows {
		if r.Run != nil && !runSeen[r.Run.String()] {
			runSeen[r.Run.String()] = true
			rep.Runs = append(rep.Runs, r.Run)
		}
	}
	rep.Models = sortedKeys(models)
	rep.Formats = sortedKeys(formats)
	rep.Summary = Summarize(results)
	for _, m := range rep.Summary.Modes {
		for _, task := range sortedKeys(tallies[m.Mode]) {
			rep.ByTask = append(rep.ByTask, *tallies[m.Mode][task])
		}
	}
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tasks returns the tasks present, sorted.
func (r Report) Tasks() []string {
	var out []string
	for _, t := range r.ByTask {
		if !slices.Contains(out, t.Task) {
			out = append(out, t.Task)
		}
	}
	slices.Sort(out)
	return out
}

// WriteMarkdown renders the report: a header naming the benchmark, model
// and format, the tables of WriteMarkdown (accuracy per mode with
// 95% Wilson interval and relative gain over direct; accuracy by number of
// steps), accuracy by task when there are several, and, when chart
// is not empty, a link to the chart image.
func (r Report) WriteMarkdown(w io.Writer, chart string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# codeplan eval: %s\n\n", r.Bench)
	fmt.Fprintf(&b, "- model: %s\n", orNone(r.Models))
	fmt.Fprintf(&b, "- format: %s\n", orNone(r.Formats))
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "- run settings: %s\n", run)
	}
	fmt.Fprintf(&b, "- codeplan: %s\n", version.String())
	fmt.Fprintf(&b, "- rows: %d (%d items × %d modes)", r.Rows, r.Items, len(r.Summary.Modes))
	if r.Errors > 0 {
		var per []string
		for _, m := range r.Summary.Modes {
			if m.Errors > 0 {
				per = append(per, fmt.Sprintf("%s %d", m.Mode, m.Errors))
			}
		}
		fmt.Fprintf(&b, "; %d could not run (prompt too long or context full: %s), counted as wrong and left out of the paired comparisons",
			r.Errors, strings.Join(per, ", "))
	}
	b.WriteString("\n\n")
	b.WriteString("Gain is the relative accuracy gain over direct answering, (acc − acc_direct) / acc_direct; difference is acc − acc_direct in percentage points.\n\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := WriteMarkdown(w, r.Summary); err != nil {
		return err
	}
	b.Reset()
	if tasks := r.Tasks(); len(tasks) > 1 {
		b.WriteString("\n## Accuracy by task\n\n| Task |")
		for _, m := range r.Summary.Modes {
			fmt.Fprintf(&b, " %s |", m.Mode)
		}
		b.WriteString("\n|:--|")
		for range r.Summary.Modes {
			b.WriteString("--:|")
		}
		b.WriteString("\n")
		for _, task := range tasks {
			fmt.Fprintf(&b, "| %s |", task)
			for _, m := range r.Summary.Modes {
				if t, ok := r.tally(m.Mode, task); ok {
					fmt.Fprintf(&b, " %.1f%% (%d/%d) |", 100*float64(t.Correct)/float64(t.N), t.Correct, t.N)
				} else {
					b.WriteString(" – |")
				}
			}
			b.WriteString("\n")
		}
	}
	if chart != "" {
		fmt.Fprintf(&b, "\n![Accuracy by mode and by number of steps](%s)\n", chart)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// chartOptions titles the chart with the benchmark and the model (with its
// adapter), and passes the per-task tallies for the task panel.
func (r Report) chartOptions() ChartOptions {
	opts := ChartOptions{Title: r.Bench + " · " + orNone(r.Models)}
	for _, t := range r.ByTask {
		opts.Tasks = append(opts.Tasks, TaskResult{Mode: t.Mode, Task: t.Task, N: t.N, Correct: t.Correct})
	}
	return opts
}

func (r Report) tally(mode, task string) (TaskTally, bool) {
	for _, t := range r.ByTask {
		if t.Mode == mode && t.Task == task && t.N > 0 {
			return t, true
		}
	}
	return TaskTally{}, false
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(unknown)"
	}
	return strings.Join(s, ", ")
}

// summaryJSON is summary.json: the report's numbers for scripts. Gains
// that are undefined (no baseline, baseline accuracy 0) are null, since
// JSON has no NaN.
type summaryJSON struct {
	Bench   string     `json:"bench"`
	Models  []string   `json:"models"`
	Formats []string   `json:"formats"`
	Rows    int        `json:"rows"`
	Items   int        `json:"items"`
	Errors  int        `json:"errors"`
	Modes   []modeJSON `json:"modes"`
	// Unequal is true when modes answered different items; paired figures
	// then cover the intersection only.
	Meta    metaJSON `json:"meta"`
	Unequal bool     `json:"unequal_items"`
	// Paired holds the paired comparisons under flexible accuracy (every
	// mode vs direct, then codeplan vs nlplan); StrictPaired the same
	// under strict accuracy.
	Paired       []pairedJSON `json:"paired"`
	StrictPaired []pairedJSON `json:"paired_strict"`
}

// metaJSON records what produced the numbers: the codeplan build, when the
// report was made, and the settings of every run behind its rows.
type metaJSON struct {
	Codeplan  string             `json:"codeplan"`
	LlamaCpp  string             `json:"llama_cpp"`
	Generated string             `json:"generated"`
	Runs      []dataset.Settings `json:"runs"`
}

// pairedJSON is one paired comparison. Null gain bounds with
// gain_ci_undefined_resamples > 0 mean the relative interval is undefined
// (the baseline had no correct item in that many resamples); the absolute
// difference and its interval are always given when n > 0.
type pairedJSON struct {
	Mode          string   `json:"mode"`
	Base          string   `json:"base"`
	N             int      `json:"n"`
	Excluded      int      `json:"excluded_could_not_run"`
	BaseCorrect   int      `json:"base_correct"`
	Correct       int      `json:"correct"`
	OnlyBase      int      `json:"only_base_right"`
	OnlyMode      int      `json:"only_mode_right"`
	Diff          *float64 `json:"difference"`
	DiffLow       *float64 `json:"difference_ci95_low"`
	DiffHigh      *float64 `json:"difference_ci95_high"`
	Gain          *float64 `json:"gain"`
	GainLow       *float64 `json:"gain_ci95_low"`
	GainHigh      *float64 `json:"gain_ci95_high"`
	GainUndefined int      `json:"gain_ci_undefined_resamples"`
	PValue        float64  `json:"mcnemar_p"`
}

func pairedToJSON(ps []Paired) []pairedJSON {
	out := []pairedJSON{}
	for _, p := range ps {
		out = append(out, pairedJSON{Mode: p.Mode, Base: p.Base, N: p.N, Excluded: p.Excluded, BaseCorrect: p.BaseCorrect,
			Correct: p.Correct, OnlyBase: p.OnlyBase, OnlyMode: p.OnlyMode,
			Diff: finitePtr(p.Diff), DiffLow: finitePtr(p.DiffCI.Low), DiffHigh: finitePtr(p.DiffCI.High),
			Gain: finitePtr(p.Gain), GainLow: finitePtr(p.GainCI.Low), GainHigh: finitePtr(p.GainCI.High),
			GainUndefined: p.GainUndefined, PValue: p.PValue})
	}
	return out
}

type modeJSON struct {
	Mode        string     `json:"mode"`
	N           int        `json:"n"`
	Correct     int        `json:"correct"`
	Accuracy    float64    `json:"accuracy"`
	CILow       float64    `json:"ci95_low"`
	CIHigh      float64    `json:"ci95_high"`
	Strict      int        `json:"strict_correct"`
	StrictAcc   float64    `json:"strict_accuracy"`
	StrictLow   float64    `json:"strict_ci95_low"`
	StrictHigh  float64    `json:"strict_ci95_high"`
	Errors      int        `json:"could_not_run"`
	Gain        *float64   `json:"gain_vs_direct"`
	Diff        *float64   `json:"difference_vs_direct"`
	MeanF1      float64    `json:"mean_f1"`
	MeanTokens  float64    `json:"mean_tokens"`
	MeanSeconds float64    `json:"mean_seconds"`
	ByStep      []stepJSON `json:"by_steps"`
	ByTask      []taskJSON `json:"by_task"`
}

type stepJSON struct {
	Steps    int     `json:"steps"`
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	CILow    float64 `json:"ci95_low"`
	CIHigh   float64 `json:"ci95_high"`
}

type taskJSON struct {
	Task     string  `json:"task"`
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

// MarshalJSON renders the report as summary.json.
func (r Report) MarshalJSON() ([]byte, error) {
	s := summaryJSON{Bench: r.Bench, Models: r.Models, Formats: r.Formats, Rows: r.Rows, Items: r.Items, Errors: r.Errors,
		Modes: []modeJSON{}, Unequal: r.Summary.Unequal,
		Paired: pairedToJSON(r.Summary.Paired), StrictPaired: pairedToJSON(r.Summary.StrictPaired),
		Meta: metaJSON{Codeplan: version.Codeplan(), LlamaCpp: version.LlamaCpp(), Generated: time.Now().UTC().Format(time.RFC3339),
			Runs: append([]dataset.Settings{}, r.Runs...)}}
	for _, m := range r.Summary.Modes {
		mj := modeJSON{Mode: m.Mode, N: m.N, Correct: m.Correct, Accuracy: finite(m.Accuracy), CILow: m.CI.Low, CIHigh: m.CI.High,
			Strict: m.StrictCorrect, StrictAcc: finite(m.StrictAccuracy), StrictLow: m.StrictCI.Low, StrictHigh: m.StrictCI.High,
			Errors: m.Errors, Diff: finitePtr(m.Diff), MeanF1: finite(m.MeanF1), MeanTokens: finite(m.MeanTokens), MeanSeconds: finite(m.MeanSeconds),
			ByStep: []stepJSON{}, ByTask: []taskJSON{}}
		if !math.IsNaN(m.Gain) && !math.IsInf(m.Gain, 0) {
			g := m.Gain
			mj.Gain = &g
		}
		for _, st := range m.ByStep {
			mj.ByStep = append(mj.ByStep, stepJSON{Steps: st.Steps, N: st.N, Correct: st.Correct,
				Accuracy: finite(st.Accuracy), CILow: st.CI.Low, CIHigh: st.CI.High})
		}
		for _, t := range r.ByTask {
			if t.Mode == m.Mode && t.N > 0 {
				mj.ByTask = append(mj.ByTask, taskJSON{Task: t.Task, N: t.N, Correct: t.Correct, Accuracy: float64(t.Correct) / float64(t.N)})
			}
		}
		s.Modes = append(s.Modes, mj)
	}
	return json.MarshalIndent(s, "", "  ")
}

// finitePtr is x, or nil (JSON null) when x is NaN or infinite.
func finitePtr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// BuildReport reads every row of dir/results.jsonl and writes
// dir/md, dir/png and dir/summary.json. Each file is written
// to a temporary name and renamed, so an interrupted report leaves the
// previous one intact.
func BuildReport(dir, bench string) (Report, error) {
	path := filepath.Join(dir, evaluate.ResultsFile)
	rows, err := evaluate.ReadRows(path)
	if err != nil {
		return Report{}, err
	}
	if len(rows) == 0 {
		return Report{}, fmt.Errorf("%s: no results to report yet", path)
	}
	if bench == "" {
		bench = benchOf(dir, rows)
	}
	rep := NewReport(bench, rows)
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md, ChartFile); err != nil {
		return rep, err
	}
	if err := writeFile(filepath.Join(dir, ReportFile), md.Bytes()); err != nil {
		return rep, err
	}
	js, err := rep.MarshalJSON()
	if err != nil {
		return rep, err
	}
	if err := writeFile(filepath.Join(dir, SummaryFile), append(js, '\n')); err != nil {
		return rep, err
	}
	var png bytes.Buffer
	if err := WriteChart(&png, rep.Summary, rep.chartOptions()); err != nil {
		return rep, fmt.Errorf("chart: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ChartFile), png.Bytes()); err != nil {
		return rep, err
	}
	return rep, nil
}

// benchOf names the benchmark of a results folder when the caller does not
// know it (eval --report-only without --bench): the name recorded in the
// rows, else in an earlier summary.json (rows written before rows carried
// it), else the folder's name.
func benchOf(dir string, rows []evaluate.Row) string {
	for _, r := range rows {
		if r.Bench != "" {
			return r.Bench
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, SummaryFile)); err == nil {
		if name := gjson.GetBytes(b, "bench").String(); name != "" && name != filepath.Base(dir) {
			return name
		}
	}
	return filepath.Base(filepath.Clean(dir))
}

// writeFile writes one report file whole, through the one writer of every
// output (a device there is refused; a file another run writes is left).
func writeFile(path string, data []byte) error {
	return dataset.WriteFile(path, data)
}
