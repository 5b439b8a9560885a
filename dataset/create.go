package dataset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every command that writes a file goes through this file: the result
// files of the row loop (OpenAppendWith), whole files written at once
// (CreateOutput: merge, synth, summaries, reports, models, adapters,
// checkpoints, chat transcripts) and files written in place for a while
// (LockOutput: perplexity's rows, finetune's step log). All of them
//   - refuse a target that is not a regular file (CheckTarget: a device, a
//     FIFO, a folder, or a symlink to one of those), so no run replaces
//     /dev/full or blocks on a pipe;
//   - take the target's lock (an flock on the target that names the
//     holder's pid in TARGET.lock), so a merge cannot rename its result over
//     a file that a running generate appends to, and two writers of one
//     file never interleave;
//   - write whole files to a temporary beside the target whose name holds
//     the writer's pid, renamed into place only when complete, and remove
//     the temporaries of dead writers on the next run.

// StaleNotice, when set, is told about every stale temporary file removed
// (the CLI logs it); nil keeps quiet. pid is 0 for a temporary named by an
// older codeplan (no pid in its name), removed once an hour old.
var StaleNotice func(path string, pid int, size int64)

// Lock is a held output lock (see LockOutput).
type Lock struct {
	f          *os.File // the open lock file, flocked
	target     *os.File // the output as it was, flocked too (nil if absent)
	path       string   // the output it locks
	createdDir string   // the top-most folder LockOutput created ("" = none)
}

// LockOutput takes the output lock of path for a writer that replaces it
// (CreateOutput) or rewrites it in place: path must be absent or a regular
// file (CheckTarget); the parent folder is created. While the lock is held,
// any other codeplan run that wants to write path, append to it or rename a
// file over it fails at once with a *LockedError naming this process.
// Temporaries of path left by dead writers are removed (StaleNotice).
func LockOutput(path string) (*Lock, error) {
	if err := CheckTarget(path); err != nil {
		return nil, err
	}
	created, err := parentDir(path)
	if err != nil {
		return nil, BadOutputf("cannot create the folder of %s: %v", path, err)
	}
	l, err := acquireLock(path)
	if err != nil {
		removeCreatedDirs(filepath.Dir(path), created)
		return nil, err
	}
	l.createdDir = created
	// The output itself is flocked too, as row writers do and as codeplan
	// versions before the lock file did, so a run of either kind that
	// appends to it keeps this writer out.
	if t, err := os.Open(path); err == nil {
		if err := syscall.Flock(int(t.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			t.Close()
			l.Unlock()
			return nil, &LockedError{Path: path, PID: lockHolder(path)}
		}
		l.target = t
	}
	removeStaleTemps(path)
	return l, nil
}

// Unlock releases the lock. The lock file is removed before the flock is
// released, so that the file of a run that takes over is never the one
// removed.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(LockPath(l.path))
	if l.target != nil {
		l.target.Close()
		l.target = nil
	}
	l.f.Close()
	l.f = nil
	// Folders made for an output that was never written go again (a
	// refused merge leaves nothing behind); a folder with files stays.
	removeCreatedDirs(filepath.Dir(l.path), l.createdDir)
}

// tempPrefix is how the temporary files of path start; the writer's pid
// follows, then a dash and a random part.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// createTemp creates the temporary file for path, named so that
// removeStaleTemps can tell whose it is.
func createTemp(path string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(path), tempPrefix(path)+strconv.Itoa(os.Getpid())+"-*")
}

// removeStaleTemps deletes the temporary files beside path that a writer
// killed before its rename left behind (kill -9 during a merge leaves a
// hidden copy of the whole merged file). Only files whose pid is no longer
// running are removed; the caller holds path's lock, so no live codeplan is
// writing one for this path either way.
func removeStaleTemps(path string) {
	dir := filepath.Dir(path)
	prefix := tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		switch {
		case ok && err == nil && pid > 0:
			if pid == os.Getpid() || processAlive(pid) {
				continue
			}
		case isDigits(rest) && time.Since(info.ModTime()) > legacyTempAge:
			// Named by an older codeplan, without its pid: one untouched
			// for this long is not being written.
			pid = 0
		default:
			continue
		}
		p := filepath.Join(dir, e.Name())
		if os.Remove(p) == nil && StaleNotice != nil {
			StaleNotice(p, pid, info.Size())
		}
	}
}

// legacyTempAge is how old a temporary without a pid in its name must be
// to count as stale.
const legacyTempAge = time.Hour

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// processAlive reports whether pid names a running process (one we may not
// signal counts as running).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// OutputFile is a file being written whole: the bytes go to a temporary file
// beside the target, which Commit renames over it, so the target is either
// the old file or the complete new one. The target's lock is held until
// Commit or Abort.
type OutputFile struct {
	*os.File // the temporary file
	path     string
	lock     *Lock
	done     bool
}

// CreateOutput starts writing path whole (see OutputFile). path must be
// absent or a regular file (devices, FIFOs, folders and symlinks to them are
// refused with an ErrBadOutput), and no other codeplan run may be writing it
// (*LockedError).
func CreateOutput(path string) (*OutputFile, error) {
	lock, err := LockOutput(path)
	if err != nil {
		return nil, err
	}
	tmp, err := createTemp(path)
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &OutputFile{File: tmp, path: path, lock: lock}, nil
}

// Path is the target the file will be renamed to.
func (o *OutputFile) Path() string { return o.path }

// Commit syncs the temporary file, renames it over the target and releases
// the lock. On error the target is left as it was.
func (o *OutputFile) Commit() error {
	if o.done {
		return fmt.Errorf("%s: already closed", o.path)
	}
	fail := func(err error) error {
		o.Abort()
		return fmt.Errorf("%s: %w", o.path, err)
	}
	// CreateTemp makes the file private; our outputs are ordinary data.
	if err := o.File.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := o.File.Sync(); err != nil {
		return fail(err)
	}
	if err := o.File.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(o.File.Name(), o.path); err != nil {
		return fail(err)
	}
	o.done = true
	// Make the rename durable; the data is already safe, so a folder that
	// cannot be synced is not worth failing over.
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		d.Sync()
		d.Close()
	}
	o.lock.Unlock()
	return nil
}

// Abort removes the temporary file and releases the lock, leaving the
// target as it was; after Commit it does nothing.
func (o *OutputFile) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.File.Close()
	os.Remove(o.File.Name())
	o.lock.Unlock()
}

// WriteOutput writes path whole with write (see CreateOutput).
func WriteOutput(path string, write func(io.Writer) error) error {
	o, err := CreateOutput(path)
	if err != nil {
		return err
	}
	if err := write(o); err != nil {
		o.Abort()
		return err
	}
	return o.Commit()
}

// WriteFile writes data as the whole of path (see CreateOutput).
func WriteFile(path string, data []byte) error {
	return WriteOutput(path, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}
