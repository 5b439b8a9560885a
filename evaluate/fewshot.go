package evaluate

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/synth"
)

// Example is one worked example for few-shot prompting: a question with
// the plans and the response that answer it. The plan fields are needed
// only by the modes that show them.
type Example struct {
	Question string
	Plan     string // code-form plan (codeplan mode)
	NLPlan   string // numbered natural-language plan (nlplan mode)
	Response string // worked answer ending in the marked final answer
	// Hint is the answer-format line of the example's own answer kind
	// (from "answer_kind" in a file row, or the synthetic item's kind);
	// empty when unknown, when the item's own hint is used.
	Hint string
}

// LoadExamples reads few-shot examples from a JSONL file. Each row has the
// question in "question" or "prompt", the response in "response" (or
// "solution", or "answer" when it is a worked answer), and the plans in
// "plan" and "nl_plan": the shape `codeplan synth` writes. Rows are kept in
// file order; the modes are checked against the fields they need, so a
// file without nl_plan fails for --modes nlplan before any model loads.
func LoadExamples(path string, modes []planner.Mode) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		if !gjson.ValidBytes(b) {
			return nil, fmt.Errorf("%s:%d: not a JSON object", path, line)
		}
		first := func(keys ...string) string {
			for _, k := range keys {
				if v := gjson.GetBytes(b, k); v.Type == gjson.String && strings.TrimSpace(v.Str) != "" {
					return v.Str
				}
			}
			return ""
		}
		ex := Example{Question: first("question", "prompt"), Response: first("response", "solution", "answer"),
			Plan: first("plan"), NLPlan: first("nl_plan")}
		if k, err := answer.ParseKind(first("answer_kind")); err == nil {
			ex.Hint = planner.Hint(k)
		}
		if ex.Question == "" || ex.Response == "" {
			return nil, fmt.Errorf("%s:%d: a few-shot example needs a question (\"question\" or \"prompt\") and a response (\"response\")", path, line)
		}
		for _, m := range modes {
			if m == planner.CodePlan && ex.Plan == "" || m == planner.NLPlan && ex.NLPlan == "" {
				return nil, fmt.Errorf("%s:%d: mode %s needs the example's %s", path, line, m, planField(m))
			}
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return out, nil
}

func planField(m planner.Mode) string {
	if m == planner.NLPlan {
		return `"nl_plan"`
	}
	return `"plan"`
}

// fewShotHistory renders up to n examples as earlier conversation turns in
// mode's own format (the assistant turns written exactly as the model is
// asked to answer), skipping an example whose question is the item's own.
// Each example's user turn carries the answer-format line just as the
// item's question does (planner.UserMessage): the example's own kind's line when
// known, else the item's (hint), so the examples show the model the same
// request it then gets.
func fewShotHistory(examples []Example, n int, mode planner.Mode, question, hint string) ([]planner.Message, error) {
	var msgs []planner.Message
	for _, ex := range examples {
		if len(msgs) == 2*n {
			break
		}
		q := strings.TrimSpace(ex.Question)
		h := ex.Hint
		if h == "" {
			h = hint
		}
		q = strings.TrimSpace(strings.TrimSuffix(q, h))
		if q == strings.TrimSpace(question) {
			continue
		}
		if h != "" {
			q += "\n\n" + h
		}
		plan := ex.Plan
		if mode == planner.NLPlan {
			plan = ex.NLPlan
		}
		asst, err := planner.AssistantText(mode, plan, ex.Response)
		if err != nil {
			return nil, fmt.Errorf("few-shot example %q: %w", excerptText(ex.Question), err)
		}
		msgs = append(msgs, planner.Message{Role: planner.RoleUser, Content: q},
			planner.Message{Role: planner.RoleAssistant, Content: asst})
	}
	if len(msgs) < 2*n {
		return nil, fmt.Errorf("only %d few-shot examples usable for this item (one equal to it is skipped), %d asked for: give more with --fewshot-file", len(msgs)/2, n)
	}
	return msgs, nil
}

func excerptText(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// FewShotSeedOffset moves the seed of a synthetic benchmark's few-shot
// examples away from the benchmark's own: the examples are a separate
// "train split" of the same families and step counts, so no example is an
// evaluated item (an equal question is skipped besides).
const FewShotSeedOffset = 1_000_003

// SynthExamples draws at least n+1 few-shot examples for a synthetic
// benchmark (n for the prompt, one more in case an example equals the
// item and is skipped): the same number of items per family and step
// count from the seed src.Seed + FewShotSeedOffset, with the code plan,
// natural-language plan and worked response that `codeplan synth` writes
// for each. The pool is ordered so that consecutive examples cycle through
// the families and step counts: the first n are as varied as the
// benchmark allows.
func SynthExamples(src Source, n int) ([]Example, error) {
	src.Seed += FewShotSeedOffset
	src.Shuffle = false
	src.PerCell = 1
	loaded, err := LoadItems(src)
	if err != nil {
		return nil, err
	}
	if cells := len(loaded.Items); cells > 0 && cells < n+1 {
		src.PerCell = (n + 1 + cells - 1) / cells
		if loaded, err = LoadItems(src); err != nil {
			return nil, err
		}
	}
	// Take the items round-robin across (family, steps) cells, so that the
	// first examples cover as many cells as there are.
	var cells []string
	byCell := map[string][]benchdata.Item{}
	for _, it := range loaded.Items {
		c := Task(it) + "/" + strconv.Itoa(it.Steps)
		if byCell[c] == nil {
			cells = append(cells, c)
		}
		byCell[c] = append(byCell[c], it)
	}
	out := make([]Example, 0, len(loaded.Items))
	for round := 0; len(out) < len(loaded.Items); round++ {
		for _, c := range cells {
			if round >= len(byCell[c]) {
				continue
			}
			it := byCell[c][round]
			w, err := synth.Work(it)
			if err != nil {
				return nil, err
			}
			out = append(out, Example{Question: it.Question, Hint: planner.Hint(it.Kind), Plan: w.Plan, NLPlan: w.NLPlan, Response: w.Response})
		}
	}
	return out, nil
}
