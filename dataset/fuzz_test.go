package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenRows feeds arbitrary bytes to the corpus readers (JSONL, JSON
// arrays, gzip) and to the resume scan of a result file. They must never
// panic, must end (every Next makes progress), and a line or element over
// MaxInputLine must be an error, not memory. Run with:
// go test -fuzz=FuzzOpenRows ./dataset (make fuzz runs it for FUZZTIME).
func FuzzOpenRows(f *testing.F) {
	f.Add([]byte(`{"prompt":"p","response":"r"}` + "\n" + `{"prompt":"q"` + "\n"))
	f.Add([]byte(`[{"instruction":"i","output":"o"},{"question":"q","answer":"a"}]`))
	f.Add([]byte(`{"conversations":[{"from":"human","value":"h"},{"from":"gpt","value":"g"}]}`))
	f.Add([]byte("\xef\xbb\xbf{\"prompt\":\"\x00\",\"response\":\"\xff\"}\n\n\n"))
	f.Add([]byte(`[{"prompt":"` + string(bytes.Repeat([]byte("a"), 5000)) + `"}]`))
	f.Add([]byte(`{"id":"a","index":0}` + "\n" + `{"id":"b","ind`))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"prompt":"p","response":"r"}` + "\n"))
	zw.Close()
	f.Add(gz.Bytes())
	f.Add(gz.Bytes()[:gz.Len()/2])

	f.Fuzz(func(t *testing.T, data []byte) {
		defer func(n int) { MaxInputLine = n }(MaxInputLine)
		MaxInputLine = 4096
		dir := t.TempDir()
		p := filepath.Join(dir, "in.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, skip := range []bool{false, true} {
			Check(p, ReadOptions{SkipBad: skip})
			r, err := Open(p, ReadOptions{SkipBad: skip})
			if err != nil {
				continue
			}
			for i := 0; ; i++ {
				if i > len(data)+2 {
					t.Fatalf("more rows than bytes: the reader makes no progress")
				}
				row, err := r.Next()
				var re *RowError
				if errors.As(err, &re) {
					continue
				}
				if err != nil {
					if !errors.Is(err, io.EOF) && len(row.Prompt) > 0 {
						t.Fatalf("a row with an error: %+v %v", row, err)
					}
					break
				}
				if len(row.Prompt) > len(data) {
					t.Fatalf("prompt of %d bytes from %d bytes of input", len(row.Prompt), len(data))
				}
			}
			r.Close()
		}
		// The same bytes as a result file to resume.
		out := filepath.Join(dir, "out.jsonl")
		os.WriteFile(out, data, 0o644)
		if w, _, err := OpenAppend(out); err == nil {
			w.Close()
		}
	})
}
