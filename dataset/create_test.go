package dataset

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMergeRespectsRunningWriter is the campaign's repro: a merge onto the
// output of a running generate renamed its result over the file, and the
// run went on writing into the replaced one (300 rows reported, 1 kept).
// Merge now fails naming the writer, and the file keeps its rows.
func TestMergeRespectsRunningWriter(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "gout.jsonl")
	w, _, err := OpenAppend(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 3; i++ {
		if err := w.Write(map[string]any{"id": strconv.Itoa(i), "index": i}); err != nil {
			t.Fatal(err)
		}
	}
	shard := writeIn(t, dir, "shard.jsonl", `{"id":"x","index":0}`+"\n")
	_, err = Merge([]string{shard}, out, MergeOptions{})
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("merge onto a file being written: %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if err := w.Write(map[string]any{"id": "3", "index": 3}); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, out); n != 4 {
		t.Errorf("the running writer's file holds %d rows, want 4", n)
	}
	// An input that a run is still writing is refused too.
	_, err = Merge([]string{out}, filepath.Join(dir, "merged.jsonl"), MergeOptions{})
	if !errors.As(err, &le) || !le.Input || !strings.Contains(err.Error(), "still being written") {
		t.Fatalf("merging a file being written: %v", err)
	}
	// Every whole-file writer takes the same lock.
	if err := WriteFile(out, []byte("{}\n")); !errors.As(err, &le) {
		t.Errorf("WriteFile onto a file being written: %v", err)
	}
	if n := countRows(t, out); n != 4 {
		t.Errorf("%d rows after the refused writers, want 4", n)
	}
	// And the appender waits for no one once the others are gone.
	w.Close()
	if _, err := Merge([]string{shard}, out, MergeOptions{}); err != nil {
		t.Fatalf("merge after the writer closed: %v", err)
	}
}

// TestLockOutputBlocksAppend: a whole-file writer holding the lock keeps a
// row writer out, and the lock is taken on a target that does not exist
// without creating it.
func TestLockOutputBlocksAppend(t *testing.T) {
	out := filepath.Join(t.TempDir(), "adapter.gguf")
	l, err := LockOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("LockOutput created the target: %v", err)
	}
	var le *LockedError
	if _, _, err := OpenAppend(out); !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Errorf("append while locked: %v", err)
	}
	if _, err := LockOutput(out); !errors.As(err, &le) {
		t.Errorf("second LockOutput: %v", err)
	}
	l.Unlock()
	if _, err := os.Stat(LockPath(out)); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
	l2, err := LockOutput(out)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	l2.Unlock()

	// A writer that flocks only the output itself (codeplan before the
	// lock file) keeps LockOutput out too.
	if err := os.WriteFile(out, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := LockOutput(out); !errors.As(err, &le) {
		t.Errorf("LockOutput on a file an older run flocks: %v", err)
	}
	if _, err := os.Stat(LockPath(out)); !os.IsNotExist(err) {
		t.Errorf("refused LockOutput left its lock file: %v", err)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return cmd.Process.Pid
}

// TestStaleTempsRemoved: kill -9 during a merge left a hidden temporary
// copy of the whole output; the next writer of that output removes it (and
// says so), but not the temporary of a live process or another output's.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "merged.jsonl")
	dead := filepath.Join(dir, ".merged.jsonl.tmp-"+strconv.Itoa(deadPID(t))+"-123")
	live := filepath.Join(dir, ".merged.jsonl.tmp-"+strconv.Itoa(os.Getppid())+"-456")
	other := filepath.Join(dir, ".other.jsonl.tmp-"+strconv.Itoa(deadPID(t))+"-789")
	legacyOld := filepath.Join(dir, ".merged.jsonl.tmp-1553969537") // older codeplan: no pid
	legacyNew := filepath.Join(dir, ".merged.jsonl.tmp-2553969537")
	for _, p := range []string{dead, live, other, legacyOld, legacyNew} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(legacyOld, old, old)
	var told []string
	StaleNotice = func(p string, pid int, size int64) { told = append(told, p) }
	defer func() { StaleNotice = nil }()
	shard := writeIn(t, dir, "shard.jsonl", `{"id":"x","index":0}`+"\n")
	if _, err := Merge([]string{shard}, out, MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead, legacyOld} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale temporary %s kept: %v", p, err)
		}
	}
	for _, p := range []string{live, other, legacyNew} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if len(told) != 2 {
		t.Errorf("notices %v, want two", told)
	}
	// A row writer cleans up too.
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w, _, err := OpenAppend(out)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("OpenAppend kept a stale temporary: %v", err)
	}
}

// TestWritersRefuseSpecialFiles: every writer refuses a device, a FIFO, a
// folder and a symlink to a device, and leaves them as they were (synth
// --out replaced /dev/full with a regular file).
func TestWritersRefuseSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	link := filepath.Join(dir, "null-link")
	if err := os.Symlink(os.DevNull, link); err != nil {
		t.Fatal(err)
	}
	targets := []string{os.DevNull, fifo, link, dir}
	writers := map[string]func(string) error{
		"WriteFile": func(p string) error { return WriteFile(p, []byte("x\n")) },
		"LockOutput": func(p string) error {
			l, err := LockOutput(p)
			l.Unlock()
			return err
		},
		"OpenAppend": func(p string) error {
			w, _, err := OpenAppend(p)
			if w != nil {
				w.Close()
			}
			return err
		},
		"Merge": func(p string) error {
			_, err := Merge([]string{writeIn(t, t.TempDir(), "s.jsonl", `{"id":"x","index":0}`+"\n")}, p, MergeOptions{})
			return err
		},
	}
	for name, write := range writers {
		for _, p := range targets {
			before, _ := os.Lstat(p)
			err := write(p)
			if !errors.Is(err, ErrBadOutput) {
				t.Errorf("%s(%s): %v, want ErrBadOutput", name, p, err)
			}
			after, _ := os.Lstat(p)
			if after == nil || after.Mode() != before.Mode() {
				t.Errorf("%s(%s) changed the file: %v -> %v", name, p, before.Mode(), after)
			}
		}
	}
}

// TestDeviceInputsRefused: /dev/zero as --input grew a run to 8 GB; devices
// are refused as inputs (pipes and stdin stay allowed).
func TestDeviceInputsRefused(t *testing.T) {
	for _, p := range []string{"/dev/zero", os.DevNull} {
		if _, err := os.Stat(p); err != nil {
			t.Skip(p, err)
		}
		if _, err := Check(p, ReadOptions{}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "is a device") {
			t.Errorf("Check(%s): %v", p, err)
		}
		if _, err := Open(p, ReadOptions{}); !errors.Is(err, ErrBadInput) {
			t.Errorf("Open(%s): %v", p, err)
		}
		if _, err := Open(p+".parquet", ReadOptions{}); err == nil {
			t.Errorf("Open(%s.parquet) succeeded", p)
		}
	}
}

// TestInputLineCap: one endless line from a pipe (cat /dev/zero | ...) ends
// in an error naming the input and the line, with bounded memory.
func TestInputLineCap(t *testing.T) {
	defer func(n int) { MaxInputLine = n }(MaxInputLine)
	MaxInputLine = 2 << 20
	dir := t.TempDir()
	fifo := filepath.Join(dir, "endless")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		f.Write([]byte(`{"prompt":"a","response":"b"}` + "\n"))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for {
			if _, err := f.Write(chunk); err != nil {
				return // the reader gave up: what we want
			}
		}
	}()
	r, err := Open(fifo, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatalf("first row: %v", err)
	}
	_, err = r.Next()
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), fifo+":2: a line longer than 2 MiB") {
		t.Fatalf("endless line: %v", err)
	}
	r.Close()
	<-done

	// The same for one endless element of a JSON array.
	p := writeIn(t, dir, "array.json", `[{"prompt":"`+strings.Repeat("a", 5<<20)+`"}]`)
	r, err = Open(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "longer than 2 MiB") {
		t.Fatalf("endless element: %v", err)
	}
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// writeIn writes content to name inside dir.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFingerprintMethodNamed: rows keyed by an older kind of model
// fingerprint are not reported as made by another model: the message says
// the two fingerprints cannot be compared.
func TestFingerprintMethodNamed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, err := OpenAppendWith(p, AppendOptions{Settings: Settings{"model": "m.gguf", "model_fingerprint": "8593075a"}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(map[string]any{"id": "a", "index": 0})
	w.Close()
	_, _, err = OpenAppendWith(p, AppendOptions{Settings: Settings{"model": "m.gguf", "model_fingerprint": "s3x4k:0123"}})
	if !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "cannot be compared") || !strings.Contains(err.Error(), "header fingerprint") {
		t.Errorf("resume with another fingerprint method: %v", err)
	}
	_, _, err = OpenAppendWith(p, AppendOptions{Settings: Settings{"model": "m.gguf", "model_fingerprint": "ffff"}})
	if err == nil || strings.Contains(err.Error(), "cannot be compared") {
		t.Errorf("same method, other model: %v", err)
	}
}
