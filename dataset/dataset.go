// Package dataset reads corpora of (prompt, response) rows and writes result
// rows for `codeplan extract`, `generate` and `eval`.
//
// It is built for corpora of millions of rows: inputs are streamed (JSONL,
// gzip-compressed JSONL, JSON arrays and Parquet row groups), result files are
// append-only JSONL that survive a crash or `kill -9` and can be resumed, and
// shard outputs are merged back into input order with per-row memory of a few
// dozen bytes.
package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Row is one (prompt, response) pair read from a corpus.
type Row struct {
	// ID identifies the row across runs: the id field of the input when it
	// has one, otherwise a hash of prompt and response (see StableID).
	ID       string
	Prompt   string
	Response string
	// Index is the 0-based position of the row in the input, counting bad
	// rows too, so that it stays the same when a rerun skips differently.
	Index int64
	// Source locates the row for humans: "file:line" for JSONL, "file:row"
	// (1-based) for Parquet, "file:element" (1-based) for JSON arrays.
	Source string
	// Raw is the original row as a JSON object; only set with
	// ReadOptions.KeepRaw, because copying every row costs memory and time.
	Raw json.RawMessage
}

// ReadOptions selects which fields of a row hold the prompt, response and id,
// and how malformed rows are treated.
type ReadOptions struct {
	// PromptField, ResponseField and IDField are gjson paths
	// (https://github.com/tidwall/gjson#path-syntax). Empty means
	// auto-detection: prompt/response, instruction(+input)/output,
	// question/answer, query/response, or a conversations/messages chat
	// array; the id comes from "id" when present. A PromptField that points at
	// a chat array yields both prompt and response from the chat unless
	// ResponseField is set too.
	PromptField   string
	ResponseField string
	IDField       string
	// SkipBad skips malformed rows and counts them (Reader.Skipped) instead of
	// returning a *RowError for them.
	SkipBad bool
	// KeepRaw fills Row.Raw with the original row.
	KeepRaw bool
	// PromptOnly accepts rows without a response (Row.Response is then
	// empty): generate needs only prompts.
	PromptOnly bool
}

// Reader streams the rows of one input. It is not safe for concurrent use;
// one goroutine reads and hands rows to workers.
type Reader interface {
	// Next returns the next row, io.EOF after the last one, or a *RowError
	// for a malformed row (when SkipBad is off); reading may continue after
	// a *RowError. Any other error is fatal (unreadable or corrupt file).
	Next() (Row, error)
	// Skipped reports the rows skipped so far because of SkipBad.
	Skipped() Skips
	// Close releases the underlying file.
	Close() error
}

// RowError describes one malformed input row.
type RowError struct {
	// Source is the input file ("stdin" for standard input).
	Source string
	// Line is the 1-based line (JSONL), row (Parquet) or element (JSON
	// array) number within Source.
	Line int64
	// Reason says what is wrong, without the location, so that equal
	// problems can be counted together.
	Reason string
}

// Error implements error as "file:line: reason".
func (e *RowError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Reason)
}

// maxSkipExamples bounds how many skipped locations are remembered: enough to
// find the bad rows, small enough for corpora where most rows are bad.
const maxSkipExamples = 5

// Skips counts the rows skipped because of ReadOptions.SkipBad.
type Skips struct {
	Total int64
	// ByReason counts skipped rows per RowError.Reason.
	ByReason map[string]int64
	// Examples holds the first few skipped rows as "file:line: reason".
	Examples []string
}

// String summarizes the skips on one line, most frequent reason first.
func (s Skips) String() string {
	if s.Total == 0 {
		return "no rows skipped"
	}
	reasons := make([]string, 0, len(s.ByReason))
	for r := range s.ByReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if s.ByReason[reasons[i]] != s.ByReason[reasons[j]] {
			return s.ByReason[reasons[i]] > s.ByReason[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows skipped:", s.Total)
	for i, r := range reasons {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %d %s", s.ByReason[r], r)
	}
	return b.String()
}

func (s *Skips) add(e *RowError) {
	if s.ByReason == nil {
		s.ByReason = make(map[string]int64)
	}
	s.Total++
	s.ByReason[e.Reason]++
	if len(s.Examples) < maxSkipExamples {
		s.Examples = append(s.Examples, e.Error())
	}
}

// clone copies the map so callers cannot race with or corrupt the reader.
func (s Skips) clone() Skips {
	c := Skips{Total: s.Total, Examples: append([]string(nil), s.Examples...)}
	if s.ByReason != nil {
		c.ByReason = make(map[string]int64, len(s.ByReason))
		for k, v := range s.ByReason {
			c.ByReason[k] = v
		}
	}
	return c
}

// Stdin is the path that means standard input (JSONL, optionally gzipped).
const Stdin = "-"

// isParquet decides the format by name, because Parquet needs random access
// and cannot be sniffed from a stream the way gzip can.
func isParquet(path string) bool {
	return strings.HasSuffix(strings.ToLower(path), ".parquet")
}

// displayName is the name used in errors and Row.Source.
func displayName(path string) string {
	if path == Stdin {
		return "stdin"
	}
	return path
}

// Open opens a corpus for reading. path "-" reads JSONL from standard input.
// Files ending in .parquet are read as Parquet; everything else is read as
// JSONL (or a single JSON array of objects), gzip-compressed or not — gzip is
// recognized by its magic bytes, so .jsonl.gz and .json.gz both work.
func Open(path string, opts ReadOptions) (Reader, error) {
	ex := newFieldFinder(opts)
	if path != Stdin && isParquet(path) {
		return openParquet(path, opts, ex)
	}
	return openText(path, opts, ex)
}

// Count returns the number of rows in path without decoding them, for
// progress bars: Parquet footer metadata, or the number of non-blank lines
// of a JSONL file (which includes malformed rows, like Row.Index does). It
// returns -1 for standard input, which cannot be read twice. opts is accepted
// for symmetry with Open; the count does not depend on it.
func Count(path string, opts ReadOptions) (int64, error) {
	_ = opts
	if path == Stdin {
		return -1, nil
	}
	if isParquet(path) {
		f, pf, err := openParquetFile(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return pf.NumRows(), nil
	}
	return countText(path)
}

// stickyErr keeps a reader returning the same fatal error after it occurred,
// so a caller that ignores one error cannot read garbage after it.
type stickyErr struct{ err error }

func (s *stickyErr) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return err
}

// errClosed is returned by Next after Close.
var errClosed = errors.New("dataset: reader is closed")

// itoa keeps Source formatting allocation-light in the hot path.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Check looks at an input before any expensive work (loading a model), so
// that a bad input costs nothing and leaves no output files behind: path
// must be a readable file with at least one usable row, and the whole file
// must decode (a truncated gzip stream or a corrupt Parquet footer is found
// here, not hours into a run). The first usable row must have the fields
// opts asks for; with SkipBad the malformed rows before it are skipped.
// It returns the number of rows (as Count does), or -1 for standard input
// and pipes, which cannot be read twice and are not checked. Errors wrap
// ErrBadInput or are a *RowError.
func Check(path string, opts ReadOptions) (int64, error) {
	if path == Stdin {
		return -1, nil
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, BadInputf("input %s does not exist", path)
	case err != nil:
		return 0, BadInputf("input %s: %w", path, err)
	case checkInputMode(path, st.Mode()) != nil:
		return 0, checkInputMode(path, st.Mode())
	case !st.Mode().IsRegular():
		return -1, nil // a pipe (e.g. <(zcat ...)): reading it twice would lose it
	}
	n, err := Count(path, opts)
	if err != nil {
		return 0, unreadable(path, err)
	}
	if n == 0 {
		return 0, BadInputf("input %s holds no rows", path)
	}
	r, err := Open(path, opts)
	if err != nil {
		return 0, unreadable(path, err)
	}
	defer r.Close()
	for {
		_, err := r.Next()
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF):
			if s := r.Skipped(); s.Total > 0 {
				return 0, BadInputf("input %s has no usable row (%s)", path, s)
			}
			return 0, BadInputf("input %s holds no rows", path)
		default:
			var re *RowError
			if errors.As(err, &re) {
				return 0, err
			}
			return 0, unreadable(path, err)
		}
	}
}

// unreadable words a read failure of input path for the user, without
// naming the path twice.
func unreadable(path string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return BadInputf("input %s ends in the middle of its data (a truncated file or download?)", path)
	}
	msg, _ := strings.CutPrefix(err.Error(), path+": ")
	return BadInputf("input %s cannot be read: %s", path, msg)
}
