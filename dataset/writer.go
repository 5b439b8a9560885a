package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Default fsync policy of a Writer. Rows come from model generation and
// arrive at most hundreds per second, so syncing this often costs little and
// bounds what an OS crash can take away.
const (
	DefaultSyncRows     = 100
	DefaultSyncInterval = 5 * time.Second
)

// Writer appends result rows (JSON objects with at least a string "id" and a
// numeric "index") to a JSONL file, one line per write system call, so that a
// killed process leaves only whole lines behind (plus at most a torn last
// line after an OS crash or a full disk, which OpenAppend removes). It is
// safe for concurrent use. The same type serves result and rejects files.
type Writer struct {
	mu         sync.Mutex
	f          *os.File
	name       string
	stdout     bool
	buf        bytes.Buffer
	enc        *json.Encoder
	syncRows   int
	syncEvery  time.Duration
	unsynced   int
	timer      *time.Timer
	written    int64
	dropped    int64
	err        error // sticky: after a failed write the file may end in a torn line
	closed     bool
	stamp      []byte // encoded Settings added to every row (nil = none)
	created    bool   // OpenAppendWith created the file
	createdDir string // and this top-most folder ("" = none)
	lock       *Lock
	redo       func([]byte) bool // AppendOptions.Redo
	redone     int               // rows Redo selected when the file was opened
	held       *os.File          // the flocked copy DropRedone renamed into place (closed by Close)
}

// AppendOptions tunes OpenAppendWith.
type AppendOptions struct {
	// Settings, when not nil, are stamped into every row written (field
	// SettingsField) and required of every row already in the file: a
	// resumed run must be the same run (see Settings).
	Settings Settings
	// Redo, when set, sees every complete row already in the file; a row
	// for which it returns true is not returned as done, so the run
	// processes it again (rows rejected for a context that has since been
	// raised). Call Writer.DropRedone before writing, so that the new row
	// replaces the old one instead of repeating its id.
	Redo func(row []byte) bool
}

// OpenAppend is OpenAppendWith without settings.
func OpenAppend(path string) (*Writer, map[string]bool, error) {
	return OpenAppendWith(path, AppendOptions{})
}

// OpenAppendWith opens path for appending results and returns the ids
// already in it, so that a rerun can skip them. A last line that is
// incomplete (no newline) or not a valid result row — what a crash mid-write
// leaves — is truncated away before appending; DroppedBytes tells how much. A
// damaged line followed by further rows is not a crash artifact, so it is an
// error naming the line rather than silently discarding data.
//
// Files codeplan did not write are never touched: path must be absent or a
// regular file, and a file whose first line is neither one of our rows nor
// the start of one is refused (errors wrap ErrBadOutput). The file is locked
// (flock) until Close, so a second run on the same file fails at once with a
// *LockedError naming the first one's pid instead of writing every row again.
//
// The parent directory is created if needed. path "-" writes to standard
// output, with no resume (the returned map is empty). The map is the
// caller's: adding ids to it as rows are written keeps a corpus that repeats
// an id from being processed twice in one run. Open the rejects file the same
// way and treat its ids as done too, so that rejected rows are not retried on
// every rerun.
func OpenAppendWith(path string, opts AppendOptions) (*Writer, map[string]bool, error) {
	if path == Stdin {
		w := newWriter(os.Stdout, "stdout")
		w.stdout = true
		return w, map[string]bool{}, nil
	}
	if err := CheckTarget(path); err != nil {
		return nil, nil, err
	}
	createdDir, err := parentDir(path)
	if err != nil {
		return nil, nil, BadOutputf("cannot create the folder of %s: %v", path, err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		removeCreatedDirs(filepath.Dir(path), createdDir)
		return nil, nil, err
	}
	// Checked again on the open file: the path may have been swapped.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, BadOutputf("%s is not a regular file", path)
	}
	lock, err := lockFile(f, path)
	if err != nil {
		f.Close() // the file existed (it is locked), so nothing to remove
		return nil, nil, err
	}
	removeStaleTemps(path)
	fail := func(err error) (*Writer, map[string]bool, error) {
		lock.Unlock()
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(path)
			removeCreatedDirs(filepath.Dir(path), createdDir)
		}
		f.Close()
		return nil, nil, err
	}
	var stamp []byte
	if opts.Settings != nil {
		stamp = opts.Settings.encode()
	}
	done, redone, keep, size, err := scanResults(f, path, opts.Settings, stamp, opts.Redo)
	if err != nil {
		return fail(err)
	}
	w := newWriter(f, path)
	w.lock = lock
	w.stamp = stamp
	w.created = errors.Is(statErr, os.ErrNotExist)
	w.createdDir = createdDir
	w.redo, w.redone = opts.Redo, redone
	if keep < size {
		if err := f.Truncate(keep); err != nil {
			return fail(fmt.Errorf("%s: cannot drop torn last line: %w", path, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		w.dropped = size - keep
	}
	return w, done, nil
}

func newWriter(f *os.File, name string) *Writer {
	w := &Writer{f: f, name: name, syncRows: DefaultSyncRows, syncEvery: DefaultSyncInterval}
	w.enc = json.NewEncoder(&w.buf)
	// Plans and answers are full of <, > and &; escaping them would make the
	// files hard to read and bigger without any benefit for JSONL.
	w.enc.SetEscapeHTML(false)
	return w
}

// scanResults collects the ids of the complete rows in f and returns the
// offset up to which the file is intact, along with its size, and how many
// rows redo selected (they are not in done). With settings, every row must
// carry them (stamp is their encoding).
func scanResults(f *os.File, name string, settings Settings, stamp []byte, redo func([]byte) bool) (done map[string]bool, redone int, keep, size int64, err error) {
	done = make(map[string]bool)
	lr := newLineReader(f, name)
	var (
		off       int64
		badStart  int64 = -1
		badLine   int64
		badReason string
		badText   []byte
		rows      int64
	)
	for {
		line, rerr := lr.next()
		if rerr != nil {
			return nil, 0, 0, 0, rerr
		}
		if line == nil {
			break
		}
		lineNo := lr.lineNo
		trimmed := bytes.TrimSpace(line)
		complete := line[len(line)-1] == '\n'
		switch {
		case badStart >= 0:
			if len(trimmed) > 0 {
				return nil, 0, 0, 0, fmt.Errorf("%s:%d: %s, but more rows follow, so this is not a torn last line; repair or remove that line and rerun", name, badLine, badReason)
			}
		case !complete:
			badStart, badLine, badReason = off, lineNo, "incomplete line"
			badText = append(badText[:0], trimmed...)
		case len(trimmed) == 0:
			// Blank lines carry no row; keep them.
		default:
			id, _, reason := resultKey(trimmed)
			if reason != "" {
				badStart, badLine, badReason = off, lineNo, reason
				badText = append(badText[:0], trimmed...)
				break
			}
			if settings != nil {
				if err := settings.check(trimmed, stamp, name, lineNo); err != nil {
					return nil, 0, 0, 0, err
				}
			}
			if redo != nil && redo(trimmed) {
				redone++
			} else {
				done[id] = true
			}
			rows++
		}
		off += int64(len(line))
	}
	keep = off
	if badStart >= 0 {
		// A torn line is only dropped from a file that is ours: one with
		// rows of ours before it, or whose only line is the start of one
		// (every row we write begins with its id).
		if rows == 0 && !bytes.HasPrefix(bytes.TrimLeft(badText, "\x00"), []byte(`{"id":"`)) && len(bytes.Trim(badText, "\x00")) > 0 {
			return nil, 0, 0, 0, BadOutputf("%s:%d: %s: this file was not written by codeplan; refusing to resume into (and truncate) it", name, badLine, badReason)
		}
		keep = badStart
	}
	return done, redone, keep, off, nil
}

// lineReader reads lines of at most maxResultLine bytes, each with its
// newline (the last one may lack it).
type lineReader struct {
	br     *bufio.Reader
	name   string
	long   []byte
	lineNo int64
	eof    bool
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, textBufferSize), name: name}
}

// next returns the next line (nil at the end). The slice is valid until the
// next call.
func (lr *lineReader) next() ([]byte, error) {
	if lr.eof {
		return nil, nil
	}
	chunk, err := lr.br.ReadSlice('\n')
	line := chunk
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], chunk...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long) > maxResultLine {
				return nil, BadOutputf("%s:%d: a line longer than %d MiB: not a file of result rows", lr.name, lr.lineNo+1, maxResultLine>>20)
			}
			chunk, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, chunk...)
		}
		line = lr.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: %w", lr.name, lr.lineNo+1, err)
	}
	if err != nil {
		lr.eof = true
	}
	if len(line) == 0 {
		return nil, nil
	}
	lr.lineNo++
	return line, nil
}

// resultID returns the id of a result line, or why the line is not one.
func resultID(line []byte) (string, string) {
	if len(line) == 0 || line[0] != '{' || !gjson.ValidBytes(line) {
		return "", "not a valid JSON object"
	}
	id := gjson.GetBytes(line, "id")
	if id.Type != gjson.String || id.Str == "" {
		return "", `no string "id"`
	}
	return id.Str, ""
}

// SetSyncPolicy makes the writer fsync after every rows rows or every
// interval, whichever comes first, and always on Close; zero disables a
// trigger. Rows handed to the kernel survive a killed process anyway; the
// policy bounds what an OS crash or power loss can lose, and lost rows are
// simply redone by the rerun.
func (w *Writer) SetSyncPolicy(rows int, interval time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncRows, w.syncEvery = rows, interval
}

// Write encodes v with encoding/json (pass json.RawMessage for an already
// encoded row) and appends it as one line in a single write call. v must
// encode to an object with a non-empty string "id" and a numeric "index",
// which resume and Merge rely on. After a failed write the writer refuses
// further rows, because the file may end in a torn line that only
// OpenAppend can clean up.
func (w *Writer) Write(v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("%s: write after Close", w.name)
	}
	w.buf.Reset()
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("%s: cannot encode row: %w", w.name, err)
	}
	line := w.buf.Bytes()
	if line[0] != '{' {
		return fmt.Errorf("%s: row must be a JSON object, got %.40s", w.name, line)
	}
	if w.stamp != nil && gjson.GetBytes(line, SettingsField).Exists() {
		return fmt.Errorf("%s: row already has a %q field", w.name, SettingsField)
	}
	if id := gjson.GetBytes(line, "id"); id.Type != gjson.String || id.Str == "" {
		return fmt.Errorf(`%s: row has no non-empty string "id": %.80s`, w.name, line)
	}
	if idx := gjson.GetBytes(line, "index"); idx.Type != gjson.Number {
		return fmt.Errorf(`%s: row has no numeric "index": %.80s`, w.name, line)
	}
	if w.stamp != nil {
		// Splice the settings in as the last field: {...} -> {...,"run":{...}}
		line = line[:len(line)-2] // "}\n"
		line = append(line, `,"`+SettingsField+`":`...)
		line = append(line, w.stamp...)
		line = append(line, '}', '\n')
	}
	if _, err := w.f.Write(line); err != nil {
		w.err = fmt.Errorf("%s: write failed after %d rows: %w", w.name, w.written, err)
		return w.err
	}
	w.written++
	w.unsynced++
	switch {
	case w.syncRows > 0 && w.unsynced >= w.syncRows:
		return w.syncLocked()
	case w.syncEvery > 0 && w.timer == nil:
		// A timer rather than a check in Write, so the last rows before a
		// long pause (a slow generation) are synced too.
		w.timer = time.AfterFunc(w.syncEvery, w.timedSync)
	}
	return nil
}

func (w *Writer) timedSync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed && w.err == nil && w.unsynced > 0 {
		w.syncLocked()
	}
}

// Sync flushes written rows to stable storage now.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	return w.syncLocked()
}

func (w *Writer) syncLocked() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.unsynced = 0
	if w.stdout {
		// Pipes and terminals cannot be fsynced; the reader owns durability.
		return nil
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("%s: fsync: %w", w.name, err)
		return w.err
	}
	return nil
}

// Close syncs and closes the file (standard output is left open).
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var err error
	if w.err == nil {
		err = w.syncLocked()
	} else if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.closed = true
	if !w.stdout {
		w.lock.Unlock()
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %w", w.name, cerr)
		}
		if w.held != nil {
			w.held.Close()
		}
	}
	return err
}

// Abandon closes a writer whose run never started (the model failed to
// load, say) and removes the file if OpenAppendWith created it and it is
// still empty, so that a failed start leaves no empty output behind.
func (w *Writer) Abandon() error {
	w.mu.Lock()
	if !w.stdout && !w.closed && w.created && w.written == 0 {
		if st, err := w.f.Stat(); err == nil && st.Size() == 0 {
			// Still under our lock, so no other run is writing it.
			os.Remove(w.name)
			removeCreatedDirs(filepath.Dir(w.name), w.createdDir)
		}
	}
	w.mu.Unlock()
	return w.Close()
}

// Written returns the number of rows written by this Writer.
func (w *Writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// DroppedBytes returns how many bytes of a torn last line OpenAppend removed
// (0 when the file was intact), so callers can log the recovery.
func (w *Writer) DroppedBytes() int64 { return w.dropped }

// Name returns the path written to ("stdout" for standard output).
func (w *Writer) Name() string { return w.name }
