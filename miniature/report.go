package miniature

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/tokenizer"
)

// Options are the inputs of Report.
type Options struct {
	Data  string   // held-out synth rows the arms were evaluated on
	Arms  []string // NAME=DIR of each eval folder (NAME@PCT for curve points)
	Train string   // training rows, for the prompt-blind baseline ("" = none)
	// Tokenizer is the folder of the arms' tokenizer (codeplan tokenizer
	// train), which the baseline counts tokens with.
	Tokenizer string
	Out       string // folder for compare.md and compare.json
	Title     string
	Resamples int // bootstrap resamples (10000)
}

// Report reads every input, compares the arms and writes Out/compare.md
// and Out/compare.json through dataset's locked writer; it returns the
// markdown. An input that cannot be used is a dataset.ErrBadInput; write
// errors are dataset's (a device or folder as target, another run's lock).
func Report(o Options) (string, error) {
	s, err := analyse(o)
	if err != nil {
		return "", dataset.BadInputf("%v", err)
	}
	var md bytes.Buffer
	s.Markdown(&md, o.Title)
	js, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return "", err
	}
	if err := dataset.WriteFile(filepath.Join(o.Out, "compare.md"), md.Bytes()); err != nil {
		return "", err
	}
	if err := dataset.WriteFile(filepath.Join(o.Out, "compare.json"), append(js, '\n')); err != nil {
		return "", err
	}
	return md.String(), nil
}

// analyse reads the rows, the arms and (for the baseline) the training rows
// and tokenizer, and compares the arms.
func analyse(o Options) (*Summary, error) {
	rows, err := ReadRows(o.Data)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", o.Data)
	}
	var arms []*Arm
	for _, spec := range o.Arms {
		name, dir, ok := cutArm(spec)
		if !ok {
			return nil, fmt.Errorf("arm %q: want NAME=DIR", spec)
		}
		a, err := ReadArm(name, dir)
		if err != nil {
			return nil, err
		}
		arms = append(arms, a)
	}
	if o.Resamples <= 0 {
		o.Resamples = 10000
	}
	s, err := Compare(rows, arms, o.Resamples)
	if err != nil {
		return nil, err
	}
	if o.Train != "" && o.Tokenizer != "" {
		tk, err := tokenizer.Load(o.Tokenizer)
		if err != nil {
			return nil, err
		}
		train, err := ReadRows(o.Train)
		if err != nil {
			return nil, err
		}
		b := PromptBlind(responseIDs(tk, train), responseIDs(tk, rows), 4, tk.Len())
		s.Baseline = &b
	}
	return s, nil
}

func cutArm(spec string) (name, dir string, ok bool) {
	for i := 0; i < len(spec); i++ {
		if spec[i] == '=' {
			return spec[:i], spec[i+1:], i > 0 && i < len(spec)-1
		}
	}
	return "", "", false
}

// responseIDs tokenises each row's response followed by <|im_end|>, the
// end of turn every trained arm also predicts.
func responseIDs(tk *tokenizer.Tokenizer, rows []Row) [][]int {
	end, _ := tk.ID(tokenizer.Specials[2])
	out := make([][]int, len(rows))
	for i, r := range rows {
		out[i] = append(tk.Encode(r.Response), end)
	}
	return out
}
