package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOpenAppendRefusesNonRegular: a device or folder as output is refused
// before anything is read or written (reading /dev/zero or /dev/full as a
// result file once grew memory without bound).
func TestOpenAppendRefusesNonRegular(t *testing.T) {
	for _, p := range []string{"/dev/null", "/dev/zero", t.TempDir()} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		_, _, err := OpenAppend(p)
		if !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: err = %v, want a not-a-regular-file ErrBadOutput", p, err)
		}
		if err := CheckTarget(p); !errors.Is(err, ErrBadOutput) {
			t.Errorf("CheckTarget(%s) = %v", p, err)
		}
	}
	if err := CheckTarget(filepath.Join(t.TempDir(), "new.jsonl")); err != nil {
		t.Errorf("CheckTarget of a missing file: %v", err)
	}
}

// TestOpenAppendBoundsLineLength: a huge file without a newline is not read
// whole.
func TestOpenAppendBoundsLineLength(t *testing.T) {
	old := maxResultLine
	maxResultLine = 4 << 20
	defer func() { maxResultLine = old }()
	content := `{"id":"a","index":0}` + "\n" + strings.Repeat("A", 6<<20)
	p := writeFile(t, "big.jsonl", content)
	_, _, err := OpenAppend(p)
	if !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), p+":2: a line longer than 4 MiB") {
		t.Fatalf("err = %v", err)
	}
	if st, _ := os.Stat(p); st.Size() != int64(len(content)) {
		t.Error("the file was changed")
	}
}

// TestOpenAppendNeverTruncatesForeignFiles: a one-line file that is not ours
// is refused, not truncated as a "torn last line"; the start of one of our
// rows is still recovered.
func TestOpenAppendNeverTruncatesForeignFiles(t *testing.T) {
	for _, content := range []string{"my precious notes\n", "no newline at all", `{"name":"x"}` + "\n", "[1,2,3]\n"} {
		p := writeFile(t, "notes.txt", content)
		_, _, err := OpenAppend(p)
		if !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "not written by codeplan") {
			t.Errorf("%q: err = %v", content, err)
		}
		if data, _ := os.ReadFile(p); string(data) != content {
			t.Errorf("%q: file changed to %q", content, data)
		}
	}
	p := writeFile(t, "torn.jsonl", `{"id":"r0`)
	w, done, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if len(done) != 0 || w.DroppedBytes() != int64(len(`{"id":"r0`)) {
		t.Errorf("torn first row of ours: done %v, dropped %d", done, w.DroppedBytes())
	}
}

// TestOpenAppendLocks: a second writer of the same file fails at once,
// naming the first one's pid; after Close the file is free again and the pid
// file is gone.
func TestOpenAppendLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenAppend(p)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second open: err = %v, want a LockedError with pid %d", err, os.Getpid())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LockPath(p)); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	w, _, err = OpenAppend(p)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	w.Close()
}

// TestOpenAppendSettings: rows carry the settings of their run, and a run
// with other settings cannot resume the file.
func TestOpenAppendSettings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	base := Settings{"model": "m.gguf@abc", "lora": "", "temperature": "0"}
	w, _, err := OpenAppendWith(p, AppendOptions{Settings: base})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(result{ID: "a", Index: 0, Plan: "x"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(p)
	if want := `{"id":"a","index":0,"plan":"x","run":{"lora":"","model":"m.gguf@abc","temperature":"0"}}` + "\n"; string(data) != want {
		t.Fatalf("row = %q, want %q", data, want)
	}
	w, done, err := OpenAppendWith(p, AppendOptions{Settings: Settings{"temperature": "0", "model": "m.gguf@abc", "lora": ""}})
	if err != nil || !done["a"] {
		t.Fatalf("same settings: done %v, err %v", done, err)
	}
	w.Close()
	other := Settings{"model": "m.gguf@abc", "lora": "a.gguf", "temperature": "0"}
	_, _, err = OpenAppendWith(p, AppendOptions{Settings: other})
	var me *SettingsMismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrBadOutput) {
		t.Fatalf("other lora: err = %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "made with lora=none") || !strings.Contains(msg, "this run uses lora=a.gguf") || strings.Contains(msg, "temperature") {
		t.Errorf("message %q should name both adapters and only what differs", msg)
	}
	// Rows that record nothing (an older codeplan) cannot be vouched for.
	q := writeFile(t, "old.jsonl", `{"id":"a","index":0}`+"\n")
	if _, _, err := OpenAppendWith(q, AppendOptions{Settings: base}); !errors.As(err, &me) || !strings.Contains(err.Error(), "does not record the settings") {
		t.Errorf("old file: err = %v", err)
	}
}

// TestMergeRowKinds: reject rows among the results (what a shell glob after
// a single-valued flag produces) are refused, and so are results given as
// rejects.
func TestMergeRowKinds(t *testing.T) {
	dir := t.TempDir()
	plans := writeFile(t, "plans-1.jsonl", `{"id":"a","index":0,"plan":"p"}`+"\n")
	rej := writeFile(t, "rejects-1.jsonl", `{"id":"b","index":1,"reason":"too_short","detail":"d"}`+"\n")
	out := filepath.Join(dir, "plans.jsonl")
	if _, err := Merge([]string{plans, rej}, out, MergeOptions{}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), rej+":1 is a rejected row") {
		t.Errorf("reject rows as results: err = %v", err)
	}
	if _, err := Merge([]string{plans}, out, MergeOptions{Rejects: []string{plans}, RejectsOut: filepath.Join(dir, "r.jsonl")}); !errors.Is(err, ErrBadInput) {
		t.Errorf("results as rejects: err = %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a refused merge wrote its output")
	}
	st, err := Merge([]string{rej}, out, MergeOptions{InputsAreRejects: true})
	if err != nil || st.Rows != 1 {
		t.Errorf("rejects-only merge: %+v, %v", st, err)
	}
	if _, err := Merge([]string{plans}, "/dev/null", MergeOptions{}); !errors.Is(err, ErrBadOutput) {
		t.Errorf("merge over a device: err = %v", err)
	}
	if _, err := Merge([]string{dir}, out, MergeOptions{}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("folder as input: err = %v", err)
	}
}

// TestCheckInput: every way an input can be unusable is found before any
// work, with exit-2 errors (ErrBadInput or a *RowError).
func TestCheckInput(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for i := range 2000 {
		fmt.Fprintf(zw, `{"prompt":"p%d","response":"r%d"}`+"\n", i, i)
	}
	zw.Close()
	full := gz.Bytes()
	dir := t.TempDir()
	cases := map[string]struct {
		path, want string
		opts       ReadOptions
	}{
		"missing":         {filepath.Join(dir, "nope.jsonl"), "does not exist", ReadOptions{}},
		"directory":       {dir, "is a directory", ReadOptions{}},
		"empty":           {writeFile(t, "empty.jsonl", ""), "holds no rows", ReadOptions{}},
		"blank":           {writeFile(t, "blank.jsonl", "\n \n"), "holds no rows", ReadOptions{}},
		"truncated gzip":  {writeFile(t, "t.jsonl.gz", string(full[:len(full)/2])), "ends in the middle", ReadOptions{}},
		"corrupt parquet": {writeFile(t, "c.parquet", "PAR1 this is not parquet at all PAR1"), "not a readable Parquet file", ReadOptions{}},
		"bad field":       {writeFile(t, "f.jsonl", `{"prompt":"p","response":"r"}`+"\n"), "", ReadOptions{PromptField: "nosuch"}},
		"all bad skipped": {writeFile(t, "b.jsonl", "{oops\n[]\n"), "no usable row", ReadOptions{SkipBad: true}},
	}
	for name, tc := range cases {
		_, err := Check(tc.path, tc.opts)
		var re *RowError
		switch {
		case tc.want == "" && !errors.As(err, &re):
			t.Errorf("%s: err = %v, want a RowError", name, err)
		case tc.want != "" && (!errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want ErrBadInput with %q", name, err, tc.want)
		}
	}
	good := writeFile(t, "good.jsonl.gz", string(full))
	if n, err := Check(good, ReadOptions{}); err != nil || n != 2000 {
		t.Errorf("good gzip: %d, %v", n, err)
	}
}
