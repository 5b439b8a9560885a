package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// testDropRedoneHook, set only by tests, runs after DropRedone has written
// and synced the new file and before it renames it into place; an error
// stops DropRedone there, as a crash would (the old file must stay whole).
var testDropRedoneHook func(tmp string) error

// DropRedone removes from the file the rows that AppendOptions.Redo
// selected when it was opened, so that the rows the run writes for them
// replace them: after a redo every id is in the file once. It returns how
// many rows it removed, and must be called before the first Write.
//
// The file is rewritten whole, as CreateOutput writes files: the rows kept
// go to a temporary beside it (named for removeStaleTemps), which is
// synced and renamed over the file, all under the writer's lock. A crash
// before the rename leaves the file as it was (the rows are redone by the
// next run, which removes the temporary); a crash after it leaves the file
// without those rows, which are not done, so the next run redoes them. No
// row is lost or written twice either way.
func (w *Writer) DropRedone() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.redone == 0 || w.stdout {
		return 0, nil
	}
	if w.written > 0 || w.closed || w.err != nil {
		return 0, fmt.Errorf("%s: DropRedone after writing", w.name)
	}
	n, err := w.rewriteWithout(w.redo)
	if err != nil {
		return 0, fmt.Errorf("%s: cannot remove the rows to redo: %w", w.name, err)
	}
	w.redone = 0
	return n, nil
}

// rewriteWithout replaces the file with a copy that lacks the rows drop
// selects, and makes the writer append to the copy.
func (w *Writer) rewriteWithout(drop func([]byte) bool) (int, error) {
	st, err := w.f.Stat()
	if err != nil {
		return 0, err
	}
	tmp, err := createTemp(w.name)
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// The file was scanned when it was opened (a torn last line is gone),
	// and the lock kept everyone else out since: every non-blank line is
	// a whole row.
	lr := newLineReader(io.NewSectionReader(w.f, 0, st.Size()), w.name)
	dropped := 0
	for {
		line, err := lr.next()
		if err != nil {
			return 0, err
		}
		if line == nil {
			break
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && drop(t) {
			dropped++
			continue
		}
		if _, err := tmp.Write(line); err != nil {
			return 0, err
		}
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	// The copy is flocked before it takes the file's name, as the file
	// was (the lock of older codeplan versions).
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, err
	}
	if testDropRedoneHook != nil {
		if err := testDropRedoneHook(tmp.Name()); err != nil {
			return 0, err
		}
	}
	if err := os.Rename(tmp.Name(), w.name); err != nil {
		return 0, err
	}
	done = true
	if d, err := os.Open(filepath.Dir(w.name)); err == nil {
		d.Sync()
		d.Close()
	}
	// Appends go to the new file from now on. O_APPEND, as the file was
	// opened; the open copy keeps its flock until Close.
	nf, err := os.OpenFile(w.name, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		tmp.Close()
		return 0, err
	}
	if st, err := nf.Stat(); err != nil || !os.SameFile(st, mustStat(tmp)) {
		nf.Close()
		tmp.Close()
		return 0, errors.New("the file changed while it was rewritten")
	}
	w.f.Close()
	w.f = nf
	w.held = tmp
	return dropped, nil
}

// mustStat is f's FileInfo, or nil.
func mustStat(f *os.File) os.FileInfo {
	st, _ := f.Stat()
	return st
}
