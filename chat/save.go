package chat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/planner"
)

// SaveFile writes a conversation to path: JSON lines (one Exchange per
// line) for .jsonl, .ndjson or .json, Markdown for .md or .markdown. The
// file is written to a temporary name first and renamed, so a failed save
// never leaves half a file in place of an older one.
func SaveFile(path string, exs []Exchange) error {
	var write func(io.Writer, []Exchange) error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		write = WriteJSONL
	case ".md", ".markdown":
		write = WriteMarkdown
	default:
		return fmt.Errorf("save %s: unknown extension %q: use .jsonl (JSON lines) or .md (Markdown)", path, filepath.Ext(path))
	}
	var buf bytes.Buffer
	if err := write(&buf, exs); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	// The one writer of every output (dataset.CreateOutput): a device,
	// FIFO or folder is refused, a file another run writes is left alone.
	// /save does not create folders: a typo in one is more likely than a
	// wish for a new one.
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return saveError(path, err)
	}
	o, err := dataset.CreateOutput(path)
	if err != nil {
		if errors.Is(err, dataset.ErrBadOutput) {
			// still an ErrBadOutput: a script's exit status says bad input (2)
			return dataset.BadOutputf("save %s: not a regular file; refusing to write over it", path)
		}
		return fmt.Errorf("save: %w", err)
	}
	if _, err := o.Write(buf.Bytes()); err != nil {
		o.Abort()
		return saveError(path, err)
	}
	if err := o.Commit(); err != nil {
		return saveError(path, err)
	}
	return nil
}

// saveError words a failed save in terms of the file the user named: the
// temporary file it goes through is an implementation detail, so its name
// is dropped from the underlying error (e.g. "permission denied").
func saveError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	return fmt.Errorf("save %s: %w", path, err)
}

// WriteJSONL writes one JSON object per exchange.
func WriteJSONL(w io.Writer, exs []Exchange) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, ex := range exs {
		if err := enc.Encode(ex); err != nil {
			return fmt.Errorf("turn %d: %w", ex.Turn, err)
		}
	}
	return nil
}

// ReadJSONL reads exchanges written by WriteJSONL; name is used in errors,
// which give the line number.
func ReadJSONL(r io.Reader, name string) ([]Exchange, error) {
	var out []Exchange
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ex Exchange
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ex); err != nil {
			return out, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// WriteMarkdown writes the conversation for people: each turn's message,
// its plan in a fenced block (python for codeplan) and the answer.
func WriteMarkdown(w io.Writer, exs []Exchange) error {
	var b strings.Builder
	b.WriteString("# codeplan chat\n")
	for _, ex := range exs {
		fmt.Fprintf(&b, "\n## Turn %d (%s)\n\n**User:**\n\n%s\n", ex.Turn, ex.Mode, strings.TrimSpace(ex.User))
		if ex.Plan != "" {
			lang := ""
			if ex.Mode == planner.CodePlan {
				lang = "python"
			}
			fence := fenceFor(ex.Plan)
			fmt.Fprintf(&b, "\n**Plan:**\n\n%s%s\n%s\n%s\n", fence, lang, ex.Plan, fence)
		}
		fmt.Fprintf(&b, "\n**Answer:**\n\n%s\n", strings.TrimSpace(ex.Answer))
		if ex.Finish == "length" {
			b.WriteString("\n*(cut off at the token limit)*\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fenceFor returns a backtick fence longer than any run of backticks in s,
// so a plan that contains ``` cannot close its block early.
func fenceFor(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}
