package dataset

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/tidwall/gjson"
)

// MergeOptions tunes Merge.
type MergeOptions struct {
	// Rejects are the rejects files of the same run; they are merged the same
	// way into RejectsOut. A rejected row whose id also appears in the results
	// is dropped, because it was accepted on a later attempt.
	Rejects    []string
	RejectsOut string
	// SkipBad skips damaged lines (counted in MergeStats.BadLines) and torn
	// last lines (MergeStats.TornLines) instead of failing.
	SkipBad bool
	// InputsAreRejects says the main inputs are rejects files: then every
	// row must be a reject row. Otherwise a reject row among the main inputs
	// is an error, so rejects never end up in a results file.
	InputsAreRejects bool
}

// ErrBadInput marks input files that cannot be used as given: missing,
// not a regular file, damaged, or holding the wrong kind of rows.
var ErrBadInput = errors.New("unusable input")

// ErrTornRows is returned by Merge when an input ends in a torn row (a shard
// killed mid-write) and SkipBad is off: that row would be missing from the
// merged file.
var ErrTornRows = errors.New("torn last rows")

// IsRejectRow reports whether a result line is a rejected row (it records
// why it was rejected: string "reason" and "detail" fields), as opposed to
// an accepted, generated or evaluated row.
func IsRejectRow(line []byte) bool {
	r := gjson.GetManyBytes(line, "reason", "detail")
	return r[0].Type == gjson.String && r[1].Type == gjson.String
}

// MergeStats reports what Merge did.
type MergeStats struct {
	Inputs int
	// Rows is the number of rows written to the output.
	Rows int64
	// Duplicates counts result rows dropped because an earlier input (in the
	// order given) or earlier line already had their id.
	Duplicates int64
	// Rejects and RejectDuplicates are the same for the rejects output.
	Rejects          int64
	RejectDuplicates int64
	// TornLines counts unparsable last lines without a newline: what a shard
	// killed mid-write leaves behind. Merge fails on them unless SkipBad.
	TornLines int64
	// TornFiles names the inputs that ended in a torn line.
	TornFiles []string
	// BadLines counts damaged lines skipped because of SkipBad.
	BadLines int64
}

// mergeEntry is all Merge keeps per row, so that millions of rows fit in a
// few dozen bytes each; the line itself is copied from its file at the end.
type mergeEntry struct {
	index int64
	off   int64
	n     uint32
	file  int32
}

// Merge combines the result files of several shards (or runs) into out:
// rows are deduplicated by id (the first occurrence wins, in the order of
// inputs and then of lines) and ordered by "index", i.e. input order. The
// output is written to a temporary file and renamed into place, so out is
// either the old file or the complete new one; out may be one of the inputs.
// out "-" writes to standard output.
func Merge(inputs []string, out string, opts MergeOptions) (MergeStats, error) {
	var st MergeStats
	if len(opts.Rejects) > 0 && opts.RejectsOut == "" {
		return st, errors.New("merge: rejects inputs given without a rejects output")
	}
	st.Inputs = len(inputs) + len(opts.Rejects)
	m := &merger{opts: opts, seen: make(map[string]struct{}), stats: &st}
	defer m.closeAll()
	// The outputs are locked before anything is read: a merge onto a file
	// that a running extract or generate appends to would rename its result
	// over that file, and the run's later rows would go to the replaced one.
	for _, p := range []string{out, opts.RejectsOut} {
		if p != "" && p != Stdin {
			l, err := LockOutput(p)
			if err != nil {
				return st, fmt.Errorf("merge: %w", err)
			}
			m.locks = append(m.locks, l)
		}
	}

	results, err := m.scanAll(inputs, &st.Duplicates, opts.InputsAreRejects)
	if err != nil {
		return st, err
	}
	var rejects []mergeEntry
	if opts.RejectsOut != "" {
		if rejects, err = m.scanAll(opts.Rejects, &st.RejectDuplicates, true); err != nil {
			return st, err
		}
	}
	if st.TornLines > 0 && !opts.SkipBad {
		return st, tornRowsf("merge: %d input(s) end in a torn row, left by a run killed mid-write (%s); rerun those runs to redo the row, or skip it", st.TornLines, strings.Join(st.TornFiles, ", "))
	}
	m.seen = nil // the ids are no longer needed; let the copy run in less memory

	if err := m.write(results, out); err != nil {
		return st, err
	}
	st.Rows = int64(len(results))
	if opts.RejectsOut != "" {
		if err := m.write(rejects, opts.RejectsOut); err != nil {
			return st, err
		}
		st.Rejects = int64(len(rejects))
	}
	return st, nil
}

type merger struct {
	opts  MergeOptions
	seen  map[string]struct{}
	files []*os.File
	names []string
	stats *MergeStats
	locks []*Lock
}

func (m *merger) closeAll() {
	for _, f := range m.files {
		f.Close()
	}
	// In reverse, so that the folder the first lock created is empty
	// when its lock goes.
	for i := len(m.locks) - 1; i >= 0; i-- {
		m.locks[i].Unlock()
	}
}

// checkNotWritten refuses an input that a running extract, generate or
// eval is still appending to (it holds an flock on the file): its merge
// would miss the rows still to come. The shared flock taken here is kept
// while merge reads, so such a run cannot start on the file meanwhile.
func (m *merger) checkNotWritten(f *os.File, path string) error {
	if st, err := f.Stat(); err == nil {
		for _, l := range m.locks {
			if l.target == nil {
				continue
			}
			if mine, err := l.target.Stat(); err == nil && os.SameFile(st, mine) {
				return nil // our own output, locked by us
			}
		}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("merge: %w", &LockedError{Path: path, PID: lockHolder(path), Input: true})
	}
	return nil
}

// scanAll indexes the given files and returns their new rows in output order.
func (m *merger) scanAll(paths []string, dups *int64, rejects bool) ([]mergeEntry, error) {
	var entries []mergeEntry
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, BadInputf("merge: %w", err)
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			kind := "unreadable"
			if err == nil {
				kind = fileKind(st.Mode())
			}
			return nil, BadInputf("merge: input %s is %s, not a file of rows", p, kind)
		}
		if err := m.checkNotWritten(f, p); err != nil {
			f.Close()
			return nil, err
		}
		m.files = append(m.files, f)
		m.names = append(m.names, p)
		if entries, err = m.scan(int32(len(m.files)-1), entries, dups, rejects); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(entries, func(a, b mergeEntry) int {
		if c := cmp.Compare(a.index, b.index); c != 0 {
			return c
		}
		if c := cmp.Compare(a.file, b.file); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
	return entries, nil
}

func (m *merger) scan(file int32, entries []mergeEntry, dups *int64, rejects bool) ([]mergeEntry, error) {
	name := m.names[file]
	lr := newLineReader(m.files[file], "merge: "+name)
	var off int64
	for {
		line, err := lr.next()
		if err != nil {
			return nil, err
		}
		if line == nil {
			return entries, nil
		}
		lineNo := lr.lineNo
		start := off
		off += int64(len(line))
		trimmed := bytes.TrimLeft(line, " \t\r\n")
		lead := len(line) - len(trimmed)
		trimmed = bytes.TrimRight(trimmed, " \t\r\n")
		if len(trimmed) == 0 {
			continue
		}
		id, index, reason := resultKey(trimmed)
		if reason == "" && IsRejectRow(trimmed) != rejects {
			if rejects {
				return nil, BadInputf("merge: %s:%d is not a rejected row, but it was given as a rejects file", name, lineNo)
			}
			return nil, BadInputf("merge: %s:%d is a rejected row (it has a reason), but it was given as a results file; merge rejects files separately", name, lineNo)
		}
		switch {
		case reason == "":
		case line[len(line)-1] != '\n': // unterminated last line: a torn write
			m.stats.TornLines++
			m.stats.TornFiles = append(m.stats.TornFiles, name)
			continue
		case m.opts.SkipBad:
			m.stats.BadLines++
			continue
		default:
			return nil, BadInputf("merge: %s:%d: %s (skip such lines to merge without them)", name, lineNo, reason)
		}
		if len(trimmed) > math.MaxUint32 {
			return nil, fmt.Errorf("merge: %s:%d: line too long", name, lineNo)
		}
		if _, dup := m.seen[id]; dup {
			*dups++
		} else {
			m.seen[id] = struct{}{}
			entries = append(entries, mergeEntry{index: index, off: start + int64(lead), n: uint32(len(trimmed)), file: file})
		}
	}
}

// resultKey returns the id and index of a result line, or why it is not one.
func resultKey(line []byte) (id string, index int64, reason string) {
	if id, reason = resultID(line); reason != "" {
		return "", 0, reason
	}
	idx := gjson.GetBytes(line, "index")
	if idx.Type != gjson.Number {
		return "", 0, `no numeric "index"`
	}
	return id, idx.Int(), ""
}

// write copies the entries' lines, in order, to out via a temporary file in
// the same directory that is renamed into place only when complete.
func (m *merger) write(entries []mergeEntry, out string) (err error) {
	var (
		dst *os.File
		tmp string
	)
	if out == Stdin {
		dst = os.Stdout
	} else {
		dir := filepath.Dir(out)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if dst, err = createTemp(out); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		tmp = dst.Name()
		defer func() {
			if err != nil {
				dst.Close()
				os.Remove(tmp)
			}
		}()
	}
	bw := bufio.NewWriterSize(dst, textBufferSize)
	var buf []byte
	for _, e := range entries {
		if cap(buf) < int(e.n)+1 {
			buf = make([]byte, int(e.n)+1)
		}
		b := buf[:e.n]
		if _, err := m.files[e.file].ReadAt(b, e.off); err != nil {
			return fmt.Errorf("merge: %s: re-reading row at byte %d: %w", m.names[e.file], e.off, err)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("merge: writing %s: %w", out, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("merge: writing %s: %w", out, err)
	}
	if tmp == "" {
		return nil
	}
	if err := dst.Chmod(0o644); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("merge: fsync %s: %w", tmp, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	// Make the rename itself durable; failure here is not worth failing a
	// merge whose data is already complete on disk.
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
