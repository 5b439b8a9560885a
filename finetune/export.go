package finetune

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/planner"
)

// ExportLayout is the row layout `codeplan export` writes for another
// trainer.
type ExportLayout string

// The export layouts.
const (
	// Messages is the OpenAI / TRL conversational layout:
	// {"id", "messages": [{"role", "content"}, ...]}.
	Messages ExportLayout = "messages"
	// ShareGPT is {"id", "conversations": [{"from": "system"|"human"|"gpt", "value"}]}.
	ShareGPT ExportLayout = "sharegpt"
	// Alpaca is {"id", "instruction", "input": "", "output"[, "system"]}.
	Alpaca ExportLayout = "alpaca"
	// PromptCompletion is TRL's conversational prompt-completion layout,
	// {"id", "prompt": [messages], "completion": [assistant message]}, on
	// which SFTTrainer scores the completion only, as finetune does.
	PromptCompletion ExportLayout = "prompt-completion"
)

// ExportLayouts lists the layouts.
func ExportLayouts() []ExportLayout {
	return []ExportLayout{Messages, ShareGPT, Alpaca, PromptCompletion}
}

// ParseExportLayout reads a layout name.
func ParseExportLayout(s string) (ExportLayout, error) {
	for _, l := range ExportLayouts() {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("unknown layout %q (want messages, sharegpt, alpaca or prompt-completion)", s)
}

// ExportOptions say how rows are exported. The text options mean what they
// mean to finetune (Config's fields of the same names).
type ExportOptions struct {
	Read       dataset.ReadOptions
	PlanField  string
	Mode       planner.Mode
	Format     planner.Format
	System     string
	Extraction *planner.Template
	Layout     ExportLayout
	// ValSplit holds out this share of the rows, chosen as finetune chooses
	// its --val-split rows (by a hash of Seed and each row's id), into Val.
	ValSplit float64
	Seed     uint64
	// Warn receives one message per skipped row.
	Warn func(string)
}

// ExportStats counts what ExportRows did.
type ExportStats struct {
	Rows, Train, Val, Skipped int
	SkipReasons               map[string]int
	BadRows                   dataset.Skips
}

// ExportRows writes every usable row of path to train (and, with
// ValSplit, the held-out ones to val) in opts.Layout. The assistant turn is
// byte for byte the text finetune trains on in the same mode and format
// (planner.Prompter.TrainingMessages), before the trainer's chat template
// adds its end-of-turn marker. A ValSplit needs a file path: the rows are
// read twice, once for their ids.
func ExportRows(path string, opts ExportOptions, train, val io.Writer) (ExportStats, error) {
	st := ExportStats{SkipReasons: map[string]int{}}
	if _, err := ParseExportLayout(string(opts.Layout)); err != nil {
		return st, err
	}
	dopts := DataOptions{Read: opts.Read, PlanField: opts.PlanField, Extraction: opts.Extraction,
		Prompter: planner.Prompter{Mode: opts.Mode, Format: opts.Format, Chat: planner.ChatML{}, System: opts.System}}
	dopts.Read.KeepRaw = true
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	held := map[int]bool{}
	if opts.ValSplit > 0 {
		if path == dataset.Stdin {
			return st, fmt.Errorf("a validation split reads the rows twice, so the input must be a file, not stdin")
		}
		if val == nil {
			return st, fmt.Errorf("a validation split needs a validation output")
		}
		// The rows finetune would hold out: the same ids, the same seed.
		var ids []Example
		err := eachRow(path, dopts, func(i int, row dataset.Row, _ []planner.Message, reason, _ string) error {
			if reason == "" {
				ids = append(ids, Example{ID: row.ID, Prefix: i})
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		_, v := splitValidation(ids, opts.ValSplit, opts.Seed)
		for _, k := range v {
			held[ids[k].Prefix] = true
		}
	}
	tw, vw := bufio.NewWriter(train), (*bufio.Writer)(nil)
	if val != nil {
		vw = bufio.NewWriter(val)
	}
	err := eachRow(path, dopts, func(i int, row dataset.Row, msgs []planner.Message, reason, detail string) error {
		st.Rows++
		if reason != "" {
			st.Skipped++
			st.SkipReasons[reason]++
			warn(fmt.Sprintf("%s: row %s skipped: %s", row.Source, row.ID, detail))
			return nil
		}
		line, err := json.Marshal(exportRow(opts.Layout, row.ID, msgs))
		if err != nil {
			return err
		}
		w := tw
		if held[i] {
			w = vw
			st.Val++
		} else {
			st.Train++
		}
		w.Write(line)
		return w.WriteByte('\n')
	}, &st.BadRows)
	if err != nil {
		return st, err
	}
	st.Skipped += int(st.BadRows.Total)
	if err := tw.Flush(); err != nil {
		return st, err
	}
	if vw != nil {
		if err := vw.Flush(); err != nil {
			return st, err
		}
	}
	if st.Train+st.Val == 0 {
		return st, fmt.Errorf("%s: %w: %d rows read, %d skipped", path, ErrNoRows, st.Rows, st.Skipped)
	}
	return st, nil
}

// eachRow reads path and calls fn with every row's training messages (or a
// skip reason), in file order; i counts rows from 0.
func eachRow(path string, opts DataOptions, fn func(i int, row dataset.Row, msgs []planner.Message, reason, detail string) error, bad ...*dataset.Skips) error {
	r, err := dataset.Open(path, opts.Read)
	if err != nil {
		return err
	}
	defer r.Close()
	for i := 0; ; i++ {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		user, plan, response, reason, detail := opts.rowText(row)
		var msgs []planner.Message
		if reason == "" {
			if msgs, err = opts.Prompter.TrainingMessages(user, plan, response); err != nil {
				reason, detail = "format", err.Error()
			}
		}
		if err := fn(i, row, msgs, reason, detail); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		*bad[0] = r.Skipped()
	}
	return nil
}

// exportRow lays one example out.
func exportRow(layout ExportLayout, id string, msgs []planner.Message) any {
	switch layout {
	case ShareGPT:
		from := map[string]string{planner.RoleSystem: "system", planner.RoleUser: "human", planner.RoleAssistant: "gpt"}
		type turn struct {
			From  string `json:"from"`
			Value string `json:"value"`
		}
		conv := make([]turn, len(msgs))
		for i, m := range msgs {
			conv[i] = turn{from[m.Role], m.Content}
		}
		return struct {
			ID            string `json:"id"`
			Conversations []turn `json:"conversations"`
		}{id, conv}
	case Alpaca:
		row := struct {
			ID          string `json:"id"`
			Instruction string `json:"instruction"`
			Input       string `json:"input"`
			Output      string `json:"output"`
			System      string `json:"system,omitempty"`
		}{ID: id}
		for _, m := range msgs {
			switch m.Role {
			case planner.RoleSystem:
				row.System = m.Content
			case planner.RoleUser:
				row.Instruction = m.Content
			case planner.RoleAssistant:
				row.Output = m.Content
			}
		}
		return row
	case PromptCompletion:
		n := len(msgs) - 1
		return struct {
			ID         string            `json:"id"`
			Prompt     []planner.Message `json:"prompt"`
			Completion []planner.Message `json:"completion"`
		}{id, msgs[:n], msgs[n:]}
	}
	return struct {
		ID       string            `json:"id"`
		Messages []planner.Message `json:"messages"`
	}{id, msgs}
}

// Summary says in one line what was exported and skipped.
func (s ExportStats) Summary() string {
	out := fmt.Sprintf("%d rows read: %d train, %d validation, %d skipped", s.Rows+int(s.BadRows.Total), s.Train, s.Val, s.Skipped)
	reasons := make([]string, 0, len(s.SkipReasons))
	for r := range s.SkipReasons {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return s.SkipReasons[reasons[i]] > s.SkipReasons[reasons[j]] })
	for i, r := range reasons {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		out += fmt.Sprintf("%s%d %s", sep, s.SkipReasons[r], r)
	}
	if len(reasons) > 0 {
		out += ")"
	}
	if s.BadRows.Total > 0 {
		out += fmt.Sprintf("; %d malformed rows skipped", s.BadRows.Total)
	}
	return out
}
