package dataset

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestValidateReadsTheWholeFile checks that Validate finds a malformed row
// anywhere in the file (Check only reads up to the first usable row),
// accepts it with SkipBad, and reports a file that cannot be read to its
// end.
func TestValidateReadsTheWholeFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"prompt":"a","response":"b"}`+"\n"+`{"prompt":"c","response":"d"}`+"\n"+`{not json`+"\n"), 0o644)
	if _, err := Check(bad, ReadOptions{}); err != nil {
		t.Fatalf("Check: %v (it reads only the first row)", err)
	}
	err := Validate(bad, ReadOptions{})
	var re *RowError
	if !errors.As(err, &re) || re.Line != 3 || re.Source != bad {
		t.Fatalf("Validate: %v, want a row error at line 3", err)
	}
	if err := Validate(bad, ReadOptions{SkipBad: true}); err != nil {
		t.Errorf("Validate with SkipBad: %v", err)
	}
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"prompt":"a","response":"b"}`+"\n"), 0o644)
	if err := Validate(good, ReadOptions{}); err != nil {
		t.Errorf("a good file: %v", err)
	}
	// A gzip stream cut short: unreadable to its end.
	gz := filepath.Join(dir, "cut.jsonl.gz")
	f, _ := os.Create(gz)
	w := gzip.NewWriter(f)
	for range 2000 {
		w.Write([]byte(`{"prompt":"a long enough prompt to need several blocks","response":"b"}` + "\n"))
	}
	w.Close()
	st, _ := f.Stat()
	f.Truncate(st.Size() / 2)
	f.Close()
	if err := Validate(gz, ReadOptions{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("truncated gzip: %v, want ErrBadInput", err)
	}
	if err := Validate(Stdin, ReadOptions{}); err != nil {
		t.Errorf("stdin is not read twice: %v", err)
	}
}
