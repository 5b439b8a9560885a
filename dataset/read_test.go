package dataset

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// writeFile writes content to name inside a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll reads every row, failing the test on any error.
func readAll(t *testing.T, path string, opts ReadOptions) ([]Row, Skips) {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	defer r.Close()
	var rows []Row
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		rows = append(rows, row)
	}
	return rows, r.Skipped()
}

func TestShapes(t *testing.T) {
	tests := []struct {
		name, line     string
		prompt, answer string
		id             string // "" means StableID(prompt, answer)
	}{
		{"prompt/response", `{"prompt":"P","response":"R"}`, "P", "R", ""},
		{"instruction only", `{"instruction":"Do it","output":"Done"}`, "Do it", "Done", ""},
		{"instruction+input", `{"instruction":"Sum","input":"1 2","output":"3"}`, "Sum\n\n1 2", "3", ""},
		{"instruction+empty input", `{"instruction":"Sum","input":"","output":"3"}`, "Sum", "3", ""},
		{"question/answer", `{"question":"Q?","answer":"A.","id":"w-1"}`, "Q?", "A.", "w-1"},
		{"query/response", `{"query":"q","response":"r","id":42}`, "q", "r", "42"},
		{"sharegpt conversations", `{"conversations":[{"from":"system","value":"S"},{"from":"human","value":"hi"},{"from":"gpt","value":"hello"},{"from":"human","value":"more"},{"from":"gpt","value":"no"}]}`, "hi", "hello", ""},
		{"openai messages", `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}`, "u", "a", ""},
		{"gemini-ish text/model", `{"messages":[{"role":"user","text":"u"},{"role":"model","text":"m"}]}`, "u", "m", ""},
		{"content parts", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":"x"},{"type":"text","text":"look"}]},{"role":"assistant","content":"ok"}]}`, "look", "ok", ""},
		{"unicode and escapes", `{"prompt":"x \u00e9 \"q\"\n","response":"<b>&</b>"}`, "x é \"q\"\n", "<b>&</b>", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "in.jsonl", tc.line+"\n")
			rows, _ := readAll(t, p, ReadOptions{})
			if len(rows) != 1 {
				t.Fatalf("got %d rows, want 1", len(rows))
			}
			r := rows[0]
			want := tc.id
			if want == "" {
				want = StableID(tc.prompt, tc.answer)
			}
			if r.Prompt != tc.prompt || r.Response != tc.answer || r.ID != want {
				t.Errorf("got (%q, %q, id %q), want (%q, %q, id %q)", r.Prompt, r.Response, r.ID, tc.prompt, tc.answer, want)
			}
			if r.Index != 0 || r.Source != p+":1" {
				t.Errorf("Index %d Source %q, want 0 and %s:1", r.Index, r.Source, p)
			}
		})
	}
}

func TestExplicitFields(t *testing.T) {
	p := writeFile(t, "in.jsonl", strings.Join([]string{
		`{"data":{"q":"Q1","a":"A1"},"meta":{"uid":"u1"}}`,
		`{"data":{"q":"Q2","a":"A2"},"meta":{"uid":7}}`,
		`{"data":{"q":"Q3","a":"A3"}}`,
	}, "\n"))
	rows, _ := readAll(t, p, ReadOptions{PromptField: "data.q", ResponseField: "data.a", IDField: "meta.uid", KeepRaw: true})
	if len(rows) != 3 {
		t.Fatalf("got %d rows", len(rows))
	}
	wantIDs := []string{"u1", "7", StableID("Q3", "A3")}
	for i, r := range rows {
		if r.ID != wantIDs[i] || r.Prompt != "Q"+itoa(int64(i+1)) || r.Response != "A"+itoa(int64(i+1)) {
			t.Errorf("row %d = %+v", i, r)
		}
		if !bytes.HasPrefix(r.Raw, []byte(`{"data":`)) {
			t.Errorf("row %d Raw = %s", i, r.Raw)
		}
	}

	// A prompt path at a chat array yields both sides; a prompt path alone
	// finds the response under a usual name.
	p = writeFile(t, "chat.jsonl", `{"dialog":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`+"\n"+`{"text":"T","output":"O"}`+"\n")
	r, err := Open(p, ReadOptions{PromptField: "dialog"})
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil || row.Prompt != "hi" || row.Response != "yo" {
		t.Errorf("chat path: %+v, %v", row, err)
	}
	r.Close()
	rows, _ = readAll(t, p, ReadOptions{PromptField: "text", SkipBad: true})
	if len(rows) != 1 || rows[0].Prompt != "T" || rows[0].Response != "O" || rows[0].Index != 1 {
		t.Errorf("prompt-only path: %+v", rows)
	}
}

func TestMalformedRows(t *testing.T) {
	lines := []string{
		`{"prompt":"p0","response":"r0"}`, // line 1, index 0
		`{"prompt":"p1","response":`,      // 2: invalid JSON
		``,                                // 3: blank, not a row
		`{"prompt":"p2"}`,                 // 4: missing response
		`{"prompt":3,"response":"r"}`,     // 5: not a string
		`{"prompt":"  ","response":"r"}`,  // 6: empty
		`["prompt","response"]`,           // 7: not an object
		`{"title":"x"}`,                   // 8: unknown shape
		`{"messages":[{"role":"user","content":"u"}]}`, // 9: no assistant turn
		`{"prompt":"p","response":"r","id":{"a":1}}`,   // 10: bad id type
		`{"prompt":"p9","response":"r9"}`,              // 11, index 9
	}
	p := writeFile(t, "bad.jsonl", strings.Join(lines, "\r\n")+"\r\n")
	wantErrs := []struct {
		line   int64
		reason string
	}{
		{2, "invalid JSON"},
		{4, `missing field "response"`},
		{5, `field "prompt" is not a string (got number)`},
		{6, `field "prompt" is empty`},
		{7, "row is not a JSON object"},
		{8, reasonNoShape},
		{9, `chat "messages" has no non-empty assistant turn after the first user turn`},
		{10, `field "id" is not a string or number (got object)`},
	}

	// Without SkipBad every bad row is an error naming file:line, and
	// reading goes on after it.
	r, err := Open(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var good []Row
	var errs []*RowError
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			errs = append(errs, re)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, row)
	}
	r.Close()
	if len(errs) != len(wantErrs) {
		t.Fatalf("got %d row errors, want %d: %v", len(errs), len(wantErrs), errs)
	}
	for i, w := range wantErrs {
		if errs[i].Source != p || errs[i].Line != w.line || errs[i].Reason != w.reason {
			t.Errorf("error %d = %+v, want line %d %q", i, errs[i], w.line, w.reason)
		}
		if want := p + ":" + itoa(w.line) + ": "; !strings.HasPrefix(errs[i].Error(), want) {
			t.Errorf("Error() = %q, want prefix %q", errs[i].Error(), want)
		}
	}
	checkGood := func(rows []Row) {
		t.Helper()
		if len(rows) != 2 || rows[0].Prompt != "p0" || rows[1].Prompt != "p9" {
			t.Fatalf("good rows = %+v", rows)
		}
		if rows[0].Index != 0 || rows[1].Index != 9 || rows[1].Source != p+":11" {
			t.Errorf("indexes/sources = %d %d %s", rows[0].Index, rows[1].Index, rows[1].Source)
		}
	}
	checkGood(good)

	// With SkipBad the same rows are counted by reason instead.
	rows, skips := readAll(t, p, ReadOptions{SkipBad: true})
	checkGood(rows)
	if skips.Total != int64(len(wantErrs)) {
		t.Errorf("Skipped().Total = %d, want %d", skips.Total, len(wantErrs))
	}
	for _, w := range wantErrs {
		if skips.ByReason[w.reason] != 1 {
			t.Errorf("ByReason[%q] = %d, want 1", w.reason, skips.ByReason[w.reason])
		}
	}
	if len(skips.Examples) != maxSkipExamples || skips.Examples[0] != p+":2: invalid JSON" {
		t.Errorf("Examples = %q", skips.Examples)
	}
	if s := skips.String(); !strings.HasPrefix(s, "8 rows skipped: 1 ") {
		t.Errorf("String() = %q", s)
	}
	if n, err := Count(p, ReadOptions{}); err != nil || n != 10 {
		t.Errorf("Count = %d, %v; want 10 non-blank lines", n, err)
	}
}

func TestLongLineAndNoTrailingNewline(t *testing.T) {
	long := strings.Repeat("x", 3*textBufferSize+17) // spans several buffer fills
	p := writeFile(t, "long.jsonl", `{"prompt":"`+long+`","response":"r"}`+"\n"+`{"prompt":"last","response":"r"}`)
	rows, _ := readAll(t, p, ReadOptions{})
	if len(rows) != 2 || rows[0].Prompt != long || rows[1].Prompt != "last" || rows[1].Source != p+":2" {
		t.Fatalf("got %d rows (first prompt len %d)", len(rows), len(rows[0].Prompt))
	}
	if n, _ := Count(p, ReadOptions{}); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGzipAndJSONArray(t *testing.T) {
	jsonl := "\xef\xbb\xbf" + `{"question":"a","answer":"b"}` + "\n\n" + `{"question":"c","answer":"d"}` + "\n"
	array := ` [ {"instruction":"a","output":"b"},
	  {"instruction":"c","input":"x","output":"d"} ] `
	tests := []struct {
		name, content string
		gz            bool
		wantPrompts   []string
		wantSources   []string
	}{
		{"rows.jsonl.gz", jsonl, true, []string{"a", "c"}, []string{":1", ":3"}},
		{"rows.jsonl", jsonl, false, []string{"a", "c"}, []string{":1", ":3"}},
		{"rows.json", array, false, []string{"a", "c\n\nx"}, []string{":1", ":2"}},
		{"rows.json.gz", array, true, []string{"a", "c\n\nx"}, []string{":1", ":2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.content)
			if tc.gz {
				data = gzipBytes(t, tc.content)
			}
			p := writeFile(t, tc.name, string(data))
			rows, _ := readAll(t, p, ReadOptions{})
			if len(rows) != len(tc.wantPrompts) {
				t.Fatalf("got %d rows, want %d", len(rows), len(tc.wantPrompts))
			}
			for i, r := range rows {
				if r.Prompt != tc.wantPrompts[i] || r.Source != p+tc.wantSources[i] || r.Index != int64(i) {
					t.Errorf("row %d = %+v", i, r)
				}
			}
			if n, err := Count(p, ReadOptions{}); err != nil || n != int64(len(tc.wantPrompts)) {
				t.Errorf("Count = %d, %v", n, err)
			}
		})
	}

	// A truncated gzip stream is a fatal error naming the file, not EOF.
	full := gzipBytes(t, strings.Repeat(`{"prompt":"p","response":"r"}`+"\n", 2000))
	p := writeFile(t, "cut.jsonl.gz", string(full[:len(full)/2]))
	r, err := Open(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), p) {
		t.Errorf("truncated gzip: err = %v, want a fatal error naming the file", err)
	}
	if _, again := r.Next(); again == nil || again.Error() != err.Error() {
		t.Errorf("error is not sticky: %v", again)
	}
}

func TestStableID(t *testing.T) {
	sum := sha256.Sum256([]byte("What is 2+2?\x004"))
	if got, want := StableID("What is 2+2?", "4"), hex.EncodeToString(sum[:8]); got != want {
		t.Errorf("StableID = %s, want %s", got, want)
	}
	if StableID("ab", "c") == StableID("a", "bc") {
		t.Error("the separator must keep (ab, c) and (a, bc) apart")
	}
	// The id must not depend on where the row is: reading a file twice, or
	// the same row at another position, gives the same id.
	a := writeFile(t, "a.jsonl", `{"prompt":"p","response":"r"}`+"\n")
	b := writeFile(t, "b.jsonl", `{"prompt":"x","response":"y"}`+"\n"+`{"response":"r","prompt":"p"}`+"\n")
	ra, _ := readAll(t, a, ReadOptions{})
	rb, _ := readAll(t, b, ReadOptions{})
	if ra[0].ID != rb[1].ID || len(ra[0].ID) != 16 {
		t.Errorf("ids %q and %q differ", ra[0].ID, rb[1].ID)
	}
}

func TestStdin(t *testing.T) {
	p := writeFile(t, "in.jsonl.gz", string(gzipBytes(t, `{"prompt":"p","response":"r"}`+"\n"+`{"bad":1}`+"\n")))
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()

	rows, skips := readAll(t, Stdin, ReadOptions{SkipBad: true})
	if len(rows) != 1 || rows[0].Prompt != "p" || rows[0].Source != "stdin:1" {
		t.Errorf("rows = %+v", rows)
	}
	if skips.Total != 1 || skips.Examples[0] != "stdin:2: "+reasonNoShape {
		t.Errorf("skips = %+v", skips)
	}
	if n, err := Count(Stdin, ReadOptions{}); n != -1 || err != nil {
		t.Errorf("Count(stdin) = %d, %v; want -1", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.jsonl"), ReadOptions{}); err == nil {
		t.Error("missing file: no error")
	}
	p := writeFile(t, "fake.parquet", "this is not parquet")
	if _, err := Open(p, ReadOptions{}); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("bad parquet: err = %v", err)
	}
	if _, err := Count(p, ReadOptions{}); err == nil {
		t.Error("Count of bad parquet: no error")
	}
}

type chatMsg struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type chatRow struct {
	ID       string    `parquet:"id"`
	Messages []chatMsg `parquet:"messages,list"`
	Score    *float64  `parquet:"score,optional"`
	Tags     []string  `parquet:"tags,list"`
}

type qaRow struct {
	Question string  `parquet:"question"`
	Answer   *string `parquet:"answer,optional"`
	Source   string  `parquet:"source"`
}

func TestParquet(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "chat.parquet")
	var in []chatRow
	for i := range 10 {
		s := float64(i)
		in = append(in, chatRow{
			ID: "c" + itoa(int64(i)),
			Messages: []chatMsg{
				{"system", "be brief"},
				{"user", "question " + itoa(int64(i))},
				{"assistant", "answer " + itoa(int64(i))},
			},
			Score: &s,
			Tags:  []string{"t"},
		})
	}
	in[4].Messages = in[4].Messages[:2] // no assistant turn: a bad row
	// Three rows per group, so reading must cross row-group boundaries.
	if err := parquet.WriteFile(p, in, parquet.MaxRowsPerRowGroup(3)); err != nil {
		t.Fatal(err)
	}

	rows, skips := readAll(t, p, ReadOptions{SkipBad: true, KeepRaw: true})
	if len(rows) != 9 || skips.Total != 1 {
		t.Fatalf("got %d rows, %d skipped; want 9 and 1", len(rows), skips.Total)
	}
	if skips.Examples[0] != p+":5: "+`chat "messages" has no non-empty assistant turn after the first user turn` {
		t.Errorf("skip example = %q", skips.Examples[0])
	}
	for _, r := range rows {
		i := r.Index
		if r.ID != "c"+itoa(i) || r.Prompt != "question "+itoa(i) || r.Response != "answer "+itoa(i) || r.Source != p+":"+itoa(i+1) {
			t.Errorf("row %+v", r)
		}
		if !bytes.Contains(r.Raw, []byte(`"tags":["t"]`)) {
			t.Errorf("Raw = %s", r.Raw)
		}
	}
	if n, err := Count(p, ReadOptions{}); err != nil || n != 10 {
		t.Errorf("Count = %d, %v; want 10", n, err)
	}

	// Without SkipBad, the bad row is a RowError with the row number.
	r, err := Open(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var re *RowError
	for err == nil {
		_, err = r.Next()
	}
	if !errors.As(err, &re) || re.Line != 5 || re.Source != p {
		t.Errorf("err = %v, want RowError at row 5", err)
	}

	// A flat WebInstruct-like layout with a null (optional) answer.
	q := filepath.Join(dir, "qa.parquet")
	ans := "4"
	if err := parquet.WriteFile(q, []qaRow{{"2+2?", &ans, "web"}, {"no answer", nil, "web"}}); err != nil {
		t.Fatal(err)
	}
	rows, skips = readAll(t, q, ReadOptions{SkipBad: true})
	if len(rows) != 1 || rows[0].Prompt != "2+2?" || rows[0].Response != "4" || rows[0].ID != StableID("2+2?", "4") {
		t.Errorf("qa rows = %+v", rows)
	}
	if skips.ByReason[`field "answer" is not a string (got null)`] != 1 {
		t.Errorf("qa skips = %+v", skips)
	}
}

func TestPromptOnly(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(p, []byte("{\"prompt\":\"only a prompt\"}\n{\"question\":\"q\",\"answer\":\"a\"}\n{\"other\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(p, ReadOptions{PromptOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	row, err := r.Next()
	if err != nil || row.Prompt != "only a prompt" || row.Response != "" {
		t.Fatalf("row 1: %+v %v", row, err)
	}
	row, err = r.Next()
	if err != nil || row.Prompt != "q" || row.Response != "a" {
		t.Fatalf("row 2: %+v %v", row, err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("a row without any prompt was accepted")
	}
	// Without PromptOnly a missing response is an error.
	r2, _ := Open(p, ReadOptions{})
	defer r2.Close()
	if _, err := r2.Next(); err == nil {
		t.Fatal("missing response accepted without PromptOnly")
	}
}
