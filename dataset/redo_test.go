package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// redoRows writes rows a..e, of which b and d carry "redo":true, and a
// blank line, and returns the file.
func redoRows(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.jsonl")
	text := `{"id":"a","index":0}
{"id":"b","index":1,"redo":true}

{"id":"c","index":2}
{"id":"d","index":3,"redo":true}
{"id":"e","index":4}
`
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func redoFlag(row []byte) bool { return gjson.GetBytes(row, "redo").Bool() }

// TestDropRedone: the rows Redo selects are not done, DropRedone removes
// exactly them (the others keep their order and the file its mode), the
// rows written next land in the rewritten file, the lock holds throughout,
// and a reopened file has every id once.
func TestDropRedone(t *testing.T) {
	p := redoRows(t)
	w, done, err := OpenAppendWith(p, AppendOptions{Redo: redoFlag})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 || done["b"] || done["d"] {
		t.Fatalf("done %v, want a, c, e", done)
	}
	n, err := w.DropRedone()
	if err != nil || n != 2 {
		t.Fatalf("DropRedone: %d, %v; want 2 rows", n, err)
	}
	if n, err := w.DropRedone(); err != nil || n != 0 {
		t.Fatalf("second DropRedone: %d, %v; want nothing to do", n, err)
	}
	if _, _, err := OpenAppend(p); !errors.As(err, new(*LockedError)) {
		t.Fatalf("second writer during the run: %v, want a LockedError", err)
	}
	for _, id := range []string{"b", "d"} {
		if err := w.Write(map[string]any{"id": id, "index": 9}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	want := `{"id":"a","index":0}

{"id":"c","index":2}
{"id":"e","index":4}
{"id":"b","index":9}
{"id":"d","index":9}
`
	if string(data) != want {
		t.Fatalf("file after the redo:\n%s\nwant:\n%s", data, want)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 as before", st.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".out.jsonl.tmp-*")); len(m) != 0 {
		t.Errorf("temporaries left: %v", m)
	}
	w, done, err = OpenAppendWith(p, AppendOptions{Redo: redoFlag})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(done) != 5 {
		t.Errorf("reopened: done %v, want all 5", done)
	}
}

// TestDropRedoneCrashBeforeRename: stopped after the copy is written but
// before it takes the file's name (where kill -9 could land), the file is
// as it was, so a rerun sees the same rows to redo; nothing is lost.
func TestDropRedoneCrashBeforeRename(t *testing.T) {
	p := redoRows(t)
	before, _ := os.ReadFile(p)
	crash := errors.New("killed")
	var tmp string
	testDropRedoneHook = func(name string) error { tmp = name; return crash }
	defer func() { testDropRedoneHook = nil }()
	w, _, err := OpenAppendWith(p, AppendOptions{Redo: redoFlag})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.DropRedone(); !errors.Is(err, crash) {
		t.Fatalf("DropRedone: %v, want the simulated crash", err)
	}
	w.Close()
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Fatalf("the file changed:\n%s", after)
	}
	if !strings.HasPrefix(filepath.Base(tmp), tempPrefix(p)) {
		t.Errorf("temporary %s is not named for removeStaleTemps", tmp)
	}
	testDropRedoneHook = nil
	w, done, err := OpenAppendWith(p, AppendOptions{Redo: redoFlag})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(done) != 3 || done["b"] || done["d"] {
		t.Errorf("rerun: done %v, want a, c, e (b and d still to redo)", done)
	}
	if n, err := w.DropRedone(); err != nil || n != 2 {
		t.Errorf("rerun DropRedone: %d, %v", n, err)
	}
}

// TestDropRedoneAfterWrite: removing rows once the run has written is
// refused: the old rows go before the first new one.
func TestDropRedoneAfterWrite(t *testing.T) {
	p := redoRows(t)
	w, _, err := OpenAppendWith(p, AppendOptions{Redo: redoFlag})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(map[string]any{"id": "f", "index": 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.DropRedone(); err == nil {
		t.Fatal("DropRedone after a write succeeded")
	}
}
