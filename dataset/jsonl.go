package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxInputLine bounds one line (one row) of a JSONL input. Rows of a corpus
// are kilobytes, and the tokenizer refuses texts over 1 MiB; a longer line
// is a file that is not rows (a binary, a device behind a pipe), and
// reading it whole would grow memory without end.
var MaxInputLine = 64 << 20 // a variable so that tests can lower it

// checkInputMode refuses an input that is a device or a socket: reading
// /dev/zero or /dev/urandom as rows never ends. Regular files and pipes
// (e.g. <(zcat corpus.gz)) are read; standard input is given as "-".
func checkInputMode(path string, m fs.FileMode) error {
	switch {
	case m.IsDir():
		return BadInputf("input %s is a directory, not a file of rows", path)
	case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket) != 0:
		return BadInputf("input %s is %s, not a file of rows (use - for standard input)", path, fileKind(m))
	}
	return nil
}

// CheckInputFile refuses an input file that cannot be rows: a device, a
// socket or a folder (errors wrap ErrBadInput). Readers of whole files
// (benchmarks) call it; Open does the same check on the file it opens.
func CheckInputFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkInputMode(path, st.Mode())
}

// textBufferSize is large enough that typical rows (a few KB) are returned by
// a single ReadSlice without copying; longer lines still work, only slower.
const textBufferSize = 1 << 20

// textStream is an opened text input with gzip and BOM already handled.
type textStream struct {
	br      *bufio.Reader
	closers []io.Closer
}

func (t *textStream) Close() error {
	var first error
	for i := len(t.closers) - 1; i >= 0; i-- {
		if err := t.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	t.closers = nil
	return first
}

// openTextStream opens path (or stdin), transparently decompressing gzip,
// which is recognized by its magic bytes rather than its name so that
// compressed stdin works too.
func openTextStream(path string) (*textStream, error) {
	var src io.Reader
	t := &textStream{}
	if path == Stdin {
		src = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err != nil {
			f.Close()
			return nil, err
		} else if err := checkInputMode(path, st.Mode()); err != nil {
			f.Close()
			return nil, err
		}
		src = f
		t.closers = append(t.closers, f)
	}
	br := bufio.NewReaderSize(src, textBufferSize)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("%s: %w", displayName(path), err)
		}
		t.closers = append(t.closers, zr)
		br = bufio.NewReaderSize(zr, textBufferSize)
	}
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	t.br = br
	return t, nil
}

// firstByte returns the first non-whitespace byte without consuming it, or 0
// for an empty input.
func firstByte(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) == n && !isSpace(b[n-1]) {
			return b[n-1], nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, nil
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				// A megabyte of leading whitespace: let the line reader cope.
				return ' ', nil
			}
			return 0, err
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func openText(path string, opts ReadOptions, ex *fieldFinder) (Reader, error) {
	ts, err := openTextStream(path)
	if err != nil {
		return nil, err
	}
	first, err := firstByte(ts.br)
	if err != nil {
		ts.Close()
		return nil, fmt.Errorf("%s: %w", displayName(path), err)
	}
	base := rowBuilder{name: displayName(path), opts: opts, ex: ex}
	if first == '[' {
		bounded := &elementBound{r: ts.br, name: base.name}
		dec := json.NewDecoder(bounded)
		bounded.dec = dec
		if _, err := dec.Token(); err != nil {
			ts.Close()
			return nil, fmt.Errorf("%s: %w", base.name, err)
		}
		return &arrayReader{rowBuilder: base, ts: ts, dec: dec}, nil
	}
	return &jsonlReader{rowBuilder: base, ts: ts}, nil
}

// elementBound feeds a JSON array's decoder and fails once it has read more
// than MaxInputLine bytes past the decoder's position, so that one endless
// element cannot grow the decoder's buffer without end.
type elementBound struct {
	r    io.Reader
	dec  *json.Decoder
	read int64
	name string
}

func (e *elementBound) Read(p []byte) (int, error) {
	if e.dec != nil && e.read-e.dec.InputOffset() > int64(MaxInputLine) {
		return 0, BadInputf("%s: a JSON element longer than %d MiB; rows are not that long", e.name, MaxInputLine>>20)
	}
	n, err := e.r.Read(p)
	e.read += int64(n)
	return n, err
}

// rowBuilder turns a JSON object into a Row or a RowError; shared by all
// input formats so that they behave the same.
type rowBuilder struct {
	name  string
	opts  ReadOptions
	ex    *fieldFinder
	skips Skips
	stickyErr
}

// build returns the row at index/pos, or (false, error) when it is malformed
// and must be reported; malformed rows under SkipBad return ok=false, nil.
func (b *rowBuilder) build(obj []byte, index, pos int64) (row Row, ok bool, err error) {
	id, prompt, response, reason := b.ex.extract(obj)
	if reason != "" {
		re := &RowError{Source: b.name, Line: pos, Reason: reason}
		if b.opts.SkipBad {
			b.skips.add(re)
			return Row{}, false, nil
		}
		return Row{}, false, re
	}
	row = Row{ID: id, Prompt: prompt, Response: response, Index: index, Source: b.name + ":" + itoa(pos)}
	if b.opts.KeepRaw {
		row.Raw = append(json.RawMessage(nil), obj...)
	}
	return row, true, nil
}

// Skipped implements Reader.
func (b *rowBuilder) Skipped() Skips { return b.skips.clone() }

// jsonlReader reads one JSON object per line.
type jsonlReader struct {
	rowBuilder
	ts    *textStream
	line  []byte // reused buffer for lines longer than the bufio buffer
	lines int64  // lines consumed, including blank ones (for Source)
	index int64  // non-blank lines consumed (for Row.Index)
}

// readLine returns the next line including its newline; the slice is only
// valid until the next call.
func (j *jsonlReader) readLine() ([]byte, error) {
	chunk, err := j.ts.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return chunk, err
	}
	j.line = append(j.line[:0], chunk...)
	for errors.Is(err, bufio.ErrBufferFull) {
		chunk, err = j.ts.br.ReadSlice('\n')
		j.line = append(j.line, chunk...)
		if len(j.line) > MaxInputLine {
			return nil, BadInputf("%s:%d: a line longer than %d MiB; rows are not that long (is this a file of JSON rows?)", j.name, j.lines+1, MaxInputLine>>20)
		}
	}
	return j.line, err
}

// Next implements Reader.
func (j *jsonlReader) Next() (Row, error) {
	if j.err != nil {
		return Row{}, j.err
	}
	if j.ts == nil {
		return Row{}, errClosed
	}
	for {
		line, err := j.readLine()
		if errors.Is(err, ErrBadInput) {
			return Row{}, j.fail(err)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Row{}, j.fail(fmt.Errorf("%s:%d: %w", j.name, j.lines+1, err))
		}
		if len(line) == 0 && err != nil {
			return Row{}, io.EOF
		}
		j.lines++
		obj := bytes.TrimSpace(line)
		if len(obj) == 0 {
			continue
		}
		index := j.index
		j.index++
		row, ok, rerr := j.build(obj, index, j.lines)
		if rerr != nil {
			return Row{}, rerr
		}
		if ok {
			return row, nil
		}
	}
}

// Close implements Reader.
func (j *jsonlReader) Close() error {
	if j.ts == nil {
		return nil
	}
	err := j.ts.Close()
	j.ts = nil
	return err
}

// arrayReader reads a file holding one JSON array of row objects, as many
// Alpaca-style .json datasets do. Elements are decoded one at a time, so the
// array is never held in memory as a whole.
type arrayReader struct {
	rowBuilder
	ts    *textStream
	dec   *json.Decoder
	index int64
	raw   json.RawMessage
}

// Next implements Reader.
func (a *arrayReader) Next() (Row, error) {
	if a.err != nil {
		return Row{}, a.err
	}
	if a.ts == nil {
		return Row{}, errClosed
	}
	for a.dec.More() {
		a.raw = a.raw[:0]
		if err := a.dec.Decode(&a.raw); err != nil {
			// Past a syntax error the decoder cannot find the next element.
			return Row{}, a.fail(fmt.Errorf("%s: element %d: %w", a.name, a.index+1, err))
		}
		index := a.index
		a.index++
		row, ok, rerr := a.build(bytes.TrimSpace(a.raw), index, index+1)
		if rerr != nil {
			return Row{}, rerr
		}
		if ok {
			return row, nil
		}
	}
	if _, err := a.dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return Row{}, a.fail(fmt.Errorf("%s: after element %d: %w", a.name, a.index, err))
	}
	return Row{}, io.EOF
}

// Close implements Reader.
func (a *arrayReader) Close() error {
	if a.ts == nil {
		return nil
	}
	err := a.ts.Close()
	a.ts = nil
	return err
}

// countText counts non-blank lines, or array elements for a JSON array file.
func countText(path string) (int64, error) {
	ts, err := openTextStream(path)
	if err != nil {
		return 0, err
	}
	defer ts.Close()
	first, err := firstByte(ts.br)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if first == '[' {
		dec := json.NewDecoder(ts.br)
		if _, err := dec.Token(); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		var n int64
		var skip json.RawMessage
		for dec.More() {
			if err := dec.Decode(&skip); err != nil {
				return n, fmt.Errorf("%s: element %d: %w", path, n+1, err)
			}
			skip = skip[:0]
			n++
		}
		return n, nil
	}
	var n int64
	content := false
	buf := make([]byte, 256<<10)
	for {
		k, err := ts.br.Read(buf)
		for _, c := range buf[:k] {
			switch c {
			case '\n':
				if content {
					n++
					content = false
				}
			case ' ', '\t', '\r':
			default:
				content = true
			}
		}
		if errors.Is(err, io.EOF) {
			if content {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
	}
}
