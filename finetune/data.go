package finetune

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/planner"
)

// Tokenizer turns text into tokens (*llama.Model implements it).
type Tokenizer interface {
	Tokenize(text string, addSpecial, parseSpecial bool) ([]lm.Token, error)
}

// Example is one training row as tokens: the prompt part (the rendered
// conversation up to the assistant header) followed by the target (plan and
// response in the trained format, and the template's end-of-turn marker).
type Example struct {
	ID     string
	Source string // file:line, for messages
	Tokens []lm.Token
	// Prefix is the number of prompt tokens. The loss scores the prediction
	// of every token from Tokens[Prefix] on, never of a prompt token.
	Prefix int
	// Truncated is set when the row was longer than the context and lost the
	// end of its target.
	Truncated bool
}

// Scored is the number of target tokens the loss scores.
func (e Example) Scored() int { return len(e.Tokens) - e.Prefix }

// DataOptions say how rows become examples.
type DataOptions struct {
	// Read selects the prompt, response and id fields (auto-detected when
	// empty) and whether malformed rows are skipped.
	Read dataset.ReadOptions
	// PlanField is the gjson path of the plan ("plan" when empty), as
	// written by `codeplan extract`. When empty in nlplan mode, a row's
	// NLPlanField is used where the row has one.
	PlanField string
	// Prompter renders rows (Mode, Format, the model's chat template).
	Prompter planner.Prompter
	// Extraction, when set, makes extractor examples: the user message is
	// the template rendered with the row's prompt and response, and the
	// target is the row's plan (PlanField; Prompter.Mode must be direct).
	Extraction *planner.Template
	// Tokenizer is the model's tokenizer.
	Tokenizer Tokenizer
	// Ctx is the most tokens one example may have; longer rows lose the end
	// of their target, with a warning naming the row.
	Ctx int
	// Warn receives one message per row that was truncated or skipped.
	Warn func(msg string)
}

// DataStats counts what LoadExamples did with the rows.
type DataStats struct {
	Rows         int            // rows read
	Used         int            // rows that became examples
	Truncated    int            // examples cut to Ctx tokens
	Skipped      int            // rows not used
	SkipReasons  map[string]int // skipped rows per reason
	Tokens       int64          // tokens in all examples
	ScoredTokens int64          // target tokens in all examples
	BadRows      dataset.Skips  // malformed rows skipped by the reader (--skip-bad)
}

// NLPlanField is the field of a natural-language plan, next to the code
// plan in "plan", as `codeplan synth` writes rows.
const NLPlanField = "nl_plan"

// ErrNoRows means the data file has no usable row.
var ErrNoRows = errors.New("no usable training rows")

// LoadExamples reads every row of path and turns it into an example. A row
// is skipped, with a warning, when it has no plan (in a plan mode), when
// the chat template cannot split it into prompt and target, or when its
// prompt alone fills the context. It fails with ErrNoRows when nothing is
// left.
func LoadExamples(path string, opts DataOptions) ([]Example, DataStats, error) {
	st := DataStats{SkipReasons: map[string]int{}}
	if opts.Ctx < 2 {
		return nil, st, fmt.Errorf("context of %d tokens is too small", opts.Ctx)
	}
	if opts.Tokenizer == nil {
		return nil, st, fmt.Errorf("no tokenizer")
	}
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	ro := opts.Read
	ro.KeepRaw = true
	r, err := dataset.Open(path, ro)
	if err != nil {
		return nil, st, err
	}
	defer r.Close()
	var out []Example
	skip := func(row dataset.Row, reason, detail string) {
		st.Skipped++
		st.SkipReasons[reason]++
		warn(fmt.Sprintf("%s: row %s skipped: %s", row.Source, row.ID, detail))
	}
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, st, err
		}
		st.Rows++
		user, plan, response, reason, detail := opts.rowText(row)
		if reason != "" {
			skip(row, reason, detail)
			continue
		}
		prefix, target, err := opts.Prompter.TrainingExample(user, plan, response)
		if err != nil {
			skip(row, "format", err.Error())
			continue
		}
		pt, err := opts.Tokenizer.Tokenize(prefix, true, true)
		if errors.Is(err, lm.ErrTextTooLong) {
			skip(row, "prompt too long", fmt.Sprintf("prompt is %d bytes: %v", len(prefix), err))
			continue
		}
		if err != nil {
			return nil, st, fmt.Errorf("%s: row %s: tokenize prompt: %w", row.Source, row.ID, err)
		}
		tt, err := opts.Tokenizer.Tokenize(target, false, true)
		if errors.Is(err, lm.ErrTextTooLong) {
			skip(row, "target too long", fmt.Sprintf("plan and response are %d bytes: %v", len(target), err))
			continue
		}
		if err != nil {
			return nil, st, fmt.Errorf("%s: row %s: tokenize target: %w", row.Source, row.ID, err)
		}
		if len(pt) == 0 || len(tt) == 0 {
			skip(row, "empty", "prompt or target renders to no tokens")
			continue
		}
		if len(pt) >= opts.Ctx {
			skip(row, "prompt too long", fmt.Sprintf("prompt alone is %d tokens, a row may have %d", len(pt), opts.Ctx))
			continue
		}
		ex := Example{ID: row.ID, Source: row.Source, Prefix: len(pt)}
		ex.Tokens = append(append(make([]lm.Token, 0, len(pt)+len(tt)), pt...), tt...)
		if len(ex.Tokens) > opts.Ctx {
			warn(fmt.Sprintf("%s: row %s truncated: %d tokens (prompt %d, target %d) cut to the %d a row may have, losing the last %d target tokens",
				row.Source, row.ID, len(ex.Tokens), len(pt), len(tt), opts.Ctx, len(ex.Tokens)-opts.Ctx))
			ex.Tokens = ex.Tokens[:opts.Ctx]
			ex.Truncated = true
			st.Truncated++
		}
		st.Used++
		st.Tokens += int64(len(ex.Tokens))
		st.ScoredTokens += int64(ex.Scored())
		out = append(out, ex)
	}
	st.BadRows = r.Skipped()
	st.Skipped += int(st.BadRows.Total)
	if len(out) == 0 {
		return nil, st, fmt.Errorf("%s: %w: %d rows read, %s", path, ErrNoRows, st.Rows, st.skipSummary())
	}
	return out, st, nil
}

// rowText picks a row's user message, plan and response as training renders
// them: the plan from PlanField (nl_plan for nlplan rows that have one), the
// extraction template around prompt and response for an extractor, no plan
// in direct mode. A row that cannot be used gets a skip reason and detail.
// LoadExamples and ExportRows share it, so both see the same text.
func (opts DataOptions) rowText(row dataset.Row) (user, plan, response, reason, detail string) {
	planField := opts.PlanField
	if planField == "" {
		planField = "plan"
	}
	plan = gjson.GetBytes(row.Raw, planField).String()
	if opts.PlanField == "" && opts.Prompter.Mode == planner.NLPlan {
		// Rows that carry both plan forms (`codeplan synth`) give the
		// natural-language one to nlplan training without a field flag.
		if nl := gjson.GetBytes(row.Raw, NLPlanField); nl.Exists() {
			plan = nl.String()
		}
	}
	needPlan := opts.Prompter.Mode.HasPlan() || opts.Extraction != nil
	if needPlan && strings.TrimSpace(plan) == "" {
		what := fmt.Sprintf("%s mode", opts.Prompter.Mode)
		if opts.Extraction != nil {
			what = "an extractor"
		}
		return "", "", "", "no plan", fmt.Sprintf("no %q field (or it is empty), which %s needs", planField, what)
	}
	user, response = row.Prompt, row.Response
	if opts.Extraction != nil {
		// The extractor reads what `codeplan extract` will show it and
		// learns to write the plan as its whole answer.
		var err error
		if user, err = opts.Extraction.Render(row.Prompt, row.Response); err != nil {
			return "", "", "", "format", err.Error()
		}
		plan, response = "", planner.CleanPlan(plan)
	}
	if !opts.Prompter.Mode.HasPlan() {
		plan = ""
	}
	return user, plan, response, "", ""
}

// skipSummary lists the skip reasons, most frequent first.
func (s DataStats) skipSummary() string {
	if s.Skipped == 0 {
		return "none skipped"
	}
	reasons := make([]string, 0, len(s.SkipReasons))
	for r := range s.SkipReasons {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return s.SkipReasons[reasons[i]] > s.SkipReasons[reasons[j]] })
	parts := make([]string, 0, len(reasons)+1)
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", s.SkipReasons[r], r))
	}
	if s.BadRows.Total > 0 {
		parts = append(parts, fmt.Sprintf("%d malformed", s.BadRows.Total))
	}
	return "skipped: " + strings.Join(parts, ", ")
}

// splitValidation puts about frac of the examples (at least one when frac
// > 0 and there are two or more) into the validation set. Membership depends
// on the seed and each row's id (rows with equal ids keep their file order),
// so adding rows to a file moves few of the others.
func splitValidation(ex []Example, frac float64, seed uint64) (train, val []int) {
	idx := make([]int, len(ex))
	for i := range idx {
		idx[i] = i
	}
	nVal := 0
	if frac > 0 && len(ex) >= 2 {
		nVal = max(1, int(frac*float64(len(ex))+0.5))
		nVal = min(nVal, len(ex)-1)
	}
	key := func(i int) uint64 { return hashString(fmt.Sprintf("%d/%s", seed, ex[i].ID)) }
	sort.SliceStable(idx, func(a, b int) bool { return key(idx[a]) < key(idx[b]) })
	val = append([]int(nil), idx[:nVal]...)
	train = append([]int(nil), idx[nVal:]...)
	sort.Ints(val)
	sort.Ints(train)
	return train, val
}

// dataHash identifies the exact token data, so a checkpoint is only resumed
// on the same rows, rendered and tokenized the same way.
func dataHash(ex []Example) string {
	h := sha256.New()
	var buf [4]byte
	for _, e := range ex {
		h.Write([]byte(e.ID))
		binary.LittleEndian.PutUint32(buf[:], uint32(e.Prefix))
		h.Write(buf[:])
		for _, t := range e.Tokens {
			binary.LittleEndian.PutUint32(buf[:], uint32(t))
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
