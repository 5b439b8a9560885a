package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/tidwall/gjson"
)

// ErrBadOutput marks an output path that codeplan refuses to write to: not a
// regular file, a file codeplan did not write, or rows made by a run with
// other settings. It is the user's input that is wrong, not the run.
var ErrBadOutput = errors.New("unusable output file")

// maxResultLine bounds one line of a result file while resuming or merging.
// Result rows are a few kilobytes; a longer "line" is not one of our files
// (a device such as /dev/zero, a binary file), and reading it whole would
// grow memory without end.
var maxResultLine = 64 << 20 // a variable so that tests can lower it

// CheckTarget refuses to replace path unless it is absent or a regular file
// (following symlinks), so that writing a temporary file and renaming it over
// path never turns a device such as /dev/null or a directory into a file.
func CheckTarget(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return BadOutputf("cannot create the folder of %s: a part of its path is a file", path)
	}
	if err != nil {
		return BadOutputf("%s: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return BadOutputf("%s is %s, not a regular file; refusing to write over it", path, fileKind(st.Mode()))
	}
	return nil
}

// fileKind names a file mode in user terms for error messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0, m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "a special file"
	}
}

// LockedError reports an output that another process is writing.
type LockedError struct {
	Path string
	PID  int // 0 when the holder did not record it
	// Input says the locked file was given as an input (to merge), which
	// would miss the rows still to come.
	Input bool
}

// Error implements error.
func (e *LockedError) Error() string {
	holder := "another codeplan run"
	if e.PID > 0 {
		holder += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	if e.Input {
		return fmt.Sprintf("input %s is still being written by %s; merge it when that run has finished", e.Path, holder)
	}
	return fmt.Sprintf("%s is being written by %s; wait for it to finish or write to another file (two writers of one file would lose or repeat rows)", e.Path, holder)
}

// LockPath is the file next to an output that names the process holding it.
func LockPath(path string) string { return path + ".lock" }

// lockFile takes the output lock of path (see acquireLock), and also an
// flock on the open output f itself, the lock of older codeplan versions.
func lockFile(f *os.File, path string) (*Lock, error) {
	l, err := acquireLock(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		l.Unlock()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path}
		}
		return nil, fmt.Errorf("%s: cannot lock: %w", path, err)
	}
	return l, nil
}

// acquireLock takes the output lock of path: an exclusive flock on
// LockPath(path), which holds our pid for the error a second run prints.
// The kernel releases an flock when its holder exits, kill -9 included, so
// a crashed run never leaves a stale lock, only a stale pid file that the
// next run takes over. The lock file is not the output itself, so that a
// lock can be taken on an output that does not exist yet (finetune's
// adapter) and held across a rename over the output (merge, synth).
func acquireLock(path string) (*Lock, error) {
	lp := LockPath(path)
	for {
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot lock: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &LockedError{Path: path, PID: lockHolder(path)}
			}
			return nil, fmt.Errorf("%s: cannot lock: %w", path, err)
		}
		// The holder before us removes the lock file before it releases
		// the flock; if that happened between our open and our flock, we
		// hold a lock on a removed file: try again on the new one.
		mine, err1 := f.Stat()
		now, err2 := os.Stat(lp)
		if err1 != nil || err2 != nil || !os.SameFile(mine, now) {
			f.Close()
			continue
		}
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		return &Lock{f: f, path: path}, nil
	}
}

// lockHolder is the pid recorded beside a locked path (0 if none).
func lockHolder(path string) int {
	pid := 0
	if b, err := os.ReadFile(LockPath(path)); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return pid
}

// Settings name what produced the rows of a result file (model fingerprint,
// adapter, mode, template hash, sampling, ...). Every row written with them
// carries them in the field SettingsField, and a resumed run with other
// settings is refused: mixing rows of two configurations in one file would
// report one's results as the other's.
type Settings map[string]string

// SettingsField is the row field that holds the Settings of its run.
const SettingsField = "run"

// String lists the settings as key=value in key order ("" shows as none).
func (s Settings) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := s[k]
		if v == "" {
			v = "none"
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}

// SettingsMismatchError reports a result file whose rows were made with
// other settings than the run that wants to resume it.
type SettingsMismatchError struct {
	Path string
	Line int64
	// File and Run hold only the settings that differ (File is nil when the
	// rows record no settings: an older codeplan wrote them).
	File, Run Settings
}

// Error implements error, naming both settings and the way out.
func (e *SettingsMismatchError) Error() string {
	if e.File == nil {
		return fmt.Sprintf("%s:%d: this row does not record the settings that made it (written by an older codeplan?), so this run (%s) cannot safely resume the file; write to another file, or delete it to start over", e.Path, e.Line, e.Run)
	}
	for k, v := range e.File {
		if strings.HasSuffix(k, "_fingerprint") && fingerprintMethod(v) != fingerprintMethod(e.Run[k]) {
			return fmt.Sprintf("%s:%d: the rows identify the model by a %s fingerprint of an older codeplan (%s=%s), which cannot be compared with this one's %s fingerprint; finish the file with the codeplan that started it, write to another file, or delete it to start over", e.Path, e.Line, fingerprintMethod(v), k, v, fingerprintMethod(e.Run[k]))
		}
	}
	return fmt.Sprintf("%s:%d: the rows were made with %s, this run uses %s; resuming would mix the two. Rerun with the file's settings, write to another file, or delete it to start over", e.Path, e.Line, e.File, e.Run)
}

// fingerprintMethod is the method named before the colon of a fingerprint
// ("s3x4k:..."); fingerprints without one are codeplan's first kind,
// "header" (shapes and output_norm only).
func fingerprintMethod(v string) string {
	if m, _, ok := strings.Cut(v, ":"); ok {
		return m
	}
	if v == "" {
		return "no"
	}
	return "header"
}

// Is makes the error an ErrBadOutput.
func (e *SettingsMismatchError) Is(target error) bool { return target == ErrBadOutput }

// settingsOf compares the settings recorded in a row with want; it returns
// nil when they match, else the error for this line.
func (s Settings) check(raw []byte, encoded []byte, path string, line int64) error {
	got := gjson.GetBytes(raw, SettingsField)
	if got.Type == gjson.JSON && bytes.Equal([]byte(got.Raw), encoded) {
		return nil // the common case: written by us with the same map
	}
	e := &SettingsMismatchError{Path: path, Line: line, Run: Settings{}}
	if !got.IsObject() {
		e.Run = s
		return e
	}
	file := Settings{}
	got.ForEach(func(k, v gjson.Result) bool {
		file[k.String()] = v.String()
		return true
	})
	e.File = Settings{}
	for k, v := range s {
		if file[k] != v {
			e.File[k], e.Run[k] = file[k], v
		}
	}
	for k, v := range file {
		if _, ok := s[k]; !ok {
			e.File[k], e.Run[k] = v, ""
		}
	}
	if len(e.File) == 0 {
		return nil // same settings, encoded differently (e.g. by hand)
	}
	return e
}

// encode is the canonical encoding of s (encoding/json sorts map keys).
func (s Settings) encode() []byte {
	b, _ := json.Marshal(map[string]string(s))
	return b
}

// parentDir creates the folder of path and returns the top-most folder it
// created ("" if none), so that an abandoned output can be removed with it.
func parentDir(path string) (string, error) {
	dir := filepath.Dir(path)
	top := ""
	for d := dir; d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		top = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return top, nil
}

// removeCreatedDirs removes the empty folders from dir up to top, which
// OpenAppendWith created.
func removeCreatedDirs(dir, top string) {
	if top == "" {
		return
	}
	for d := dir; ; d = filepath.Dir(d) {
		if os.Remove(d) != nil || d == top || d == filepath.Dir(d) {
			return
		}
	}
}

// markedError is an error that also matches a sentinel (errors.Is) without
// adding the sentinel's words to its message.
type markedError struct{ err, mark error }

func (e markedError) Error() string   { return e.err.Error() }
func (e markedError) Unwrap() []error { return []error{e.err, e.mark} }

// BadInputf formats an error that is an ErrBadInput (exit 2 in the CLI).
func BadInputf(format string, args ...any) error {
	return markedError{fmt.Errorf(format, args...), ErrBadInput}
}

// BadOutputf formats an error that is an ErrBadOutput (exit 2 in the CLI).
func BadOutputf(format string, args ...any) error {
	return markedError{fmt.Errorf(format, args...), ErrBadOutput}
}

func tornRowsf(format string, args ...any) error {
	return markedError{fmt.Errorf(format, args...), ErrTornRows}
}
