package synth

import (
	"fmt"
	"slices"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/planner"
)

// Row is one training or test row of `codeplan synth`. The same file
// serves both sides without field flags: finetune reads prompt (the exact
// user message eval sends, hint included), plan or nl_plan, and response;
// eval's file loader reads question, answer, answer_kind and steps, and
// adds the same hint back.
type Row struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // the problem family: arith, list, string, order, truth
	K    int    `json:"k"`    // reasoning steps
	// Steps repeats K under the name eval's loader reads step counts from.
	Steps    int    `json:"steps"`
	Question string `json:"question"`
	Prompt   string `json:"prompt"`
	Plan     string `json:"plan"`
	NLPlan   string `json:"nl_plan"`
	// ControlPlan is the code plan with its names, relations and numbers
	// masked (the miniature's control arm; finetune --plan-field
	// control_plan).
	ControlPlan string `json:"control_plan"`
	Response    string `json:"response"`
	Answer      string `json:"answer"`
	// AnswerKind is how the answer is extracted and scored (number,
	// exact, exact_case, yesno): the families differ, so one file needs it
	// per row.
	AnswerKind answer.Kind `json:"answer_kind"`
}

// RowsOptions choose the rows of Rows.
type RowsOptions struct {
	Seed  int64
	N     int // rows per kind and step count
	Steps []int
	Kinds []Kind
	// Exclude holds prompts that must not appear (those of other splits).
	// Items whose prompt is excluded, or already used in this set, are
	// skipped and the next index is tried, so every cell still gets N rows.
	Exclude map[string]bool
	// MaxTries bounds the indexes tried per cell, as a multiple of N
	// (default 50), so a cell whose prompt space is exhausted fails instead
	// of looping.
	MaxTries int
}

// Rows makes N rows per (kind, k), in kind then k order, with plans
// and worked solutions. Rows depend only on the options. No two rows share
// a prompt, and none has an excluded prompt.
func Rows(o RowsOptions) ([]Row, error) {
	if o.N < 1 {
		return nil, fmt.Errorf("rows per kind and step count must be at least 1, got %d", o.N)
	}
	if err := Validate(o.Steps, o.Kinds); err != nil {
		return nil, err
	}
	tries := o.MaxTries
	if tries <= 0 {
		tries = 50
	}
	used := map[string]bool{}
	var rows []Row
	for _, kind := range o.Kinds {
		for _, k := range o.Steps {
			got := 0
			for index := 0; got < o.N; index++ {
				if index >= tries*o.N {
					return nil, fmt.Errorf("%s k=%d: only %d distinct prompts not excluded in %d tries (want %d): ask for fewer rows",
						kind, k, got, index, o.N)
				}
				it := Item(o.Seed, kind, k, index)
				prompt := planner.UserMessage(it.Question, it.Kind)
				if used[prompt] || o.Exclude[prompt] {
					continue
				}
				w, err := Work(it)
				if err != nil {
					return nil, err
				}
				used[prompt] = true
				got++
				rows = append(rows, Row{
					ID: it.ID, Kind: string(kind), K: k, Steps: k,
					Question: it.Question, Prompt: prompt,
					Plan: w.Plan, NLPlan: w.NLPlan, ControlPlan: w.Control, Response: w.Response,
					Answer: it.Gold, AnswerKind: it.Kind,
				})
			}
		}
	}
	return rows, nil
}

// SharedPrompts returns the prompts that occur in both lists, sorted.
func SharedPrompts(a, b []string) []string {
	in := make(map[string]bool, len(a))
	for _, p := range a {
		in[p] = true
	}
	var out []string
	for _, p := range b {
		if in[p] {
			out = append(out, p)
			in[p] = false // report each once
		}
	}
	slices.Sort(out)
	return out
}
