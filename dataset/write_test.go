package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

type result struct {
	ID    string `json:"id"`
	Index int64  `json:"index"`
	Plan  string `json:"plan"`
}

// rejectRow has the shape of extract's rejected rows.
type rejectRow struct {
	ID     string `json:"id"`
	Index  int64  `json:"index"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// readLines returns the lines of a result file, checking each is valid JSON
// and that the file ends in a newline.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end in a newline", path)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		if !gjson.Valid(l) {
			t.Fatalf("%s:%d is not valid JSON: %q", path, i+1, l)
		}
	}
	return lines
}

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		want    ShardSpec
		wantErr string
	}{
		{"", ShardSpec{1, 1}, ""},
		{"1/1", ShardSpec{1, 1}, ""},
		{"2/8", ShardSpec{2, 8}, ""},
		{" 3 / 4 ", ShardSpec{3, 4}, ""},
		{"8", ShardSpec{}, "want K/N"},
		{"0/4", ShardSpec{}, "between 1 and 4"},
		{"5/4", ShardSpec{}, "between 1 and 4"},
		{"1/0", ShardSpec{}, "at least 1"},
		{"a/4", ShardSpec{}, "K is not a whole number"},
		{"1/b", ShardSpec{}, "N is not a whole number"},
		// A 0-based index plus one, as a Kubernetes Indexed Job writes it.
		{"0+1/8", ShardSpec{1, 8}, ""},
		{"7+1/8", ShardSpec{8, 8}, ""},
		{"8+1/8", ShardSpec{}, "between 1 and 8"},
		{"-1+1/8", ShardSpec{}, "K is not a whole number"},
		{"$(JOB_COMPLETION_INDEX)+1/8", ShardSpec{}, "K is not a whole number"},
		{"1+/8", ShardSpec{}, "K is not a whole number"},
	}
	for _, tc := range tests {
		got, err := ParseShard(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("ParseShard(%q) error = %v, want one containing %q and the input", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := (ShardSpec{2, 8}).String(); s != "2/8" {
		t.Errorf("String = %q", s)
	}
}

func TestShardPartition(t *testing.T) {
	const rows, n = 20000, 7
	counts := make([]int, n)
	for i := range rows {
		// Sequential-looking ids are the hard case for a weak hash.
		id := fmt.Sprintf("row-%06d", i)
		owners := 0
		for k := 1; k <= n; k++ {
			if (ShardSpec{K: k, N: n}).Keep(id) {
				owners++
				counts[k-1]++
			}
		}
		if owners != 1 {
			t.Fatalf("id %s kept by %d shards, want exactly 1", id, owners)
		}
	}
	for k, c := range counts {
		if want := rows / n; c < want*9/10 || c > want*11/10 {
			t.Errorf("shard %d/%d holds %d rows, want about %d", k+1, n, c, want)
		}
	}
	if !(ShardSpec{}).Keep("x") || !(ShardSpec{1, 1}).Keep("x") {
		t.Error("no sharding must keep every row")
	}
}

func TestOpenAppendResume(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "out.jsonl")
	corpus := make([]result, 50)
	for i := range corpus {
		corpus[i] = result{ID: StableID(itoa(int64(i)), "r"), Index: int64(i), Plan: "def solve():\n    return <x> & y"}
	}

	// First run: 20 rows, then a crash in the middle of row 21's line.
	w, done, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 0 || w.DroppedBytes() != 0 {
		t.Fatalf("fresh file: done %d, dropped %d", len(done), w.DroppedBytes())
	}
	for _, r := range corpus[:20] {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if w.Written() != 20 {
		t.Errorf("Written = %d", w.Written())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(corpus[20])
	half := line[:len(line)/2]
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(half)
	f.Close()

	// Rerun: the torn line is dropped, the 20 ids are done, the rest is
	// written; repeat once more with nothing left to do.
	for run := 0; run < 2; run++ {
		w, done, err = OpenAppend(p)
		if err != nil {
			t.Fatal(err)
		}
		wantDone, wantDropped := 20, int64(len(half))
		if run == 1 {
			wantDone, wantDropped = 50, 0
		}
		if len(done) != wantDone || w.DroppedBytes() != wantDropped {
			t.Fatalf("run %d: done %d dropped %d, want %d and %d", run, len(done), w.DroppedBytes(), wantDone, wantDropped)
		}
		for _, r := range corpus {
			if !done[r.ID] {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}

	lines := readLines(t, p)
	if len(lines) != len(corpus) {
		t.Fatalf("%d lines, want %d", len(lines), len(corpus))
	}
	seen := map[string]bool{}
	for i, l := range lines {
		id := gjson.Get(l, "id").String()
		if seen[id] {
			t.Errorf("duplicate id %s", id)
		}
		seen[id] = true
		if gjson.Get(l, "index").Int() != int64(i) {
			t.Errorf("line %d has index %d", i+1, gjson.Get(l, "index").Int())
		}
	}
	if !strings.Contains(lines[0], `<x> & y`) {
		t.Errorf("HTML characters were escaped: %s", lines[0])
	}
}

func TestOpenAppendDamage(t *testing.T) {
	good := `{"id":"a","index":0}` + "\n"
	tests := []struct {
		name, content string
		wantDone      int
		wantDropped   int
		wantErr       string
	}{
		{"empty file", "", 0, 0, ""},
		{"intact", good + good, 1, 0, ""},
		{"invalid complete last line", good + `{"id":"b","ind` + "\n", 1, len(`{"id":"b","ind`) + 1, ""},
		{"unterminated valid last line", good + `{"id":"b","index":1}`, 1, len(`{"id":"b","index":1}`), ""},
		{"zero-filled tail", good + "\x00\x00\x00\x00", 1, 4, ""},
		{"blank lines kept", good + "\n" + good, 1, 0, ""},
		{"damage in the middle", good + "garbage\n" + good, 0, 0, ":2: not a valid JSON object, but more rows follow"},
		{"no id", `{"index":0}` + "\n" + good, 0, 0, `:1: no string "id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "out.jsonl", tc.content)
			w, done, err := OpenAppend(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), p+tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, p+tc.wantErr)
				}
				if data, _ := os.ReadFile(p); string(data) != tc.content {
					t.Error("a damaged file must be left untouched")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(done) != tc.wantDone || w.DroppedBytes() != int64(tc.wantDropped) {
				t.Errorf("done %d dropped %d, want %d and %d", len(done), w.DroppedBytes(), tc.wantDone, tc.wantDropped)
			}
			if err := w.Write(result{ID: "z", Index: 9}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			data, _ := os.ReadFile(p)
			if want := tc.content[:len(tc.content)-tc.wantDropped] + `{"id":"z","index":9,"plan":""}` + "\n"; string(data) != want {
				t.Errorf("file = %q, want %q", data, want)
			}
		})
	}
}

func TestWriterRejectsBadRows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bad := []any{
		map[string]any{"index": 1},
		map[string]any{"id": "", "index": 1},
		map[string]any{"id": 5, "index": 1},
		map[string]any{"id": "a"},
		map[string]any{"id": "a", "index": "1"},
		[]int{1},
		func() {},
	}
	for _, v := range bad {
		if err := w.Write(v); err == nil {
			t.Errorf("Write(%v): no error", v)
		}
	}
	// Bad rows are refused before writing, so the writer stays usable.
	if err := w.Write(json.RawMessage(`{"id": "a",
		"index": 3}`)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := w.Write(result{ID: "b"}); err == nil {
		t.Error("Write after Close: no error")
	}
	if lines := readLines(t, p); len(lines) != 1 || lines[0] != `{"id":"a","index":3}` {
		t.Errorf("lines = %q", lines)
	}
}

func TestWriterSyncPolicy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	unsynced := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.unsynced
	}

	w.SetSyncPolicy(3, 0)
	for i := range 2 {
		w.Write(result{ID: itoa(int64(i)), Index: int64(i)})
	}
	if unsynced() != 2 {
		t.Errorf("after 2 rows: unsynced = %d", unsynced())
	}
	w.Write(result{ID: "2", Index: 2})
	if unsynced() != 0 {
		t.Errorf("after 3 rows: unsynced = %d, want a sync", unsynced())
	}

	w.SetSyncPolicy(0, 20*time.Millisecond)
	w.Write(result{ID: "3", Index: 3})
	deadline := time.Now().Add(5 * time.Second)
	for unsynced() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if unsynced() != 0 {
		t.Error("timed sync did not happen")
	}
}

func TestWriterStdout(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stdout.jsonl")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = f
	w, done, err := OpenAppend(Stdin)
	os.Stdout = old
	if err != nil || done == nil || len(done) != 0 {
		t.Fatalf("OpenAppend(-): %v, done %v", err, done)
	}
	if err := w.Write(result{ID: "a", Index: 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Errorf("Sync on stdout: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Close must leave standard output open.
	if _, err := f.Write([]byte(`{"id":"b","index":1}` + "\n")); err != nil {
		t.Errorf("stdout was closed: %v", err)
	}
	f.Close()
	if lines := readLines(t, p); len(lines) != 2 || w.Name() != "stdout" {
		t.Errorf("lines = %q", lines)
	}
}

// processCorpus is what extract/generate do: read rows, keep the shard,
// skip done ids, write a result (or a reject for every 10th row).
// With shuffle it writes even indexes first, then odd ones, as parallel
// workers finishing out of order would.
func processCorpus(t *testing.T, corpus, out, rejects string, shard ShardSpec, shuffle bool) {
	t.Helper()
	w, done, err := OpenAppend(out)
	if err != nil {
		t.Fatal(err)
	}
	rw, rdone, err := OpenAppend(rejects)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := readAll(t, corpus, ReadOptions{})
	if shuffle {
		var even, odd []Row
		for _, r := range rows {
			if r.Index%2 == 0 {
				even = append(even, r)
			} else {
				odd = append(odd, r)
			}
		}
		rows = append(even, odd...)
	}
	for _, r := range rows {
		if !shard.Keep(r.ID) || done[r.ID] || rdone[r.ID] {
			continue
		}
		var err error
		if r.Index%10 == 9 {
			err = rw.Write(rejectRow{ID: r.ID, Index: r.Index, Reason: "too_short", Detail: "plan for " + r.Prompt})
		} else {
			err = w.Write(result{ID: r.ID, Index: r.Index, Plan: "plan for " + r.Prompt})
		}
		if err != nil {
			t.Fatal(err)
		}
		done[r.ID] = true // a repeated row later in the corpus is not redone
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMergeShardsEqualsUnsharded(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, `{"prompt":"p%d","response":"r%d"}`+"\n", i, i)
	}
	b.WriteString(`{"prompt":"p8","response":"r8"}` + "\n") // a repeated row (same id as row 8)
	corpus := writeFile(t, "corpus.jsonl", b.String())

	// The reference: one unsharded run.
	whole, wholeRej := filepath.Join(dir, "whole.jsonl"), filepath.Join(dir, "whole.rejects.jsonl")
	processCorpus(t, corpus, whole, wholeRej, ShardSpec{}, false)

	// Four shards, each writing out of order; shard 2 crashes with a torn
	// line and is not rerun before merging.
	var outs, rejs []string
	for k := 1; k <= 4; k++ {
		o, r := filepath.Join(dir, fmt.Sprintf("s%d.jsonl", k)), filepath.Join(dir, fmt.Sprintf("s%d.rejects.jsonl", k))
		processCorpus(t, corpus, o, r, ShardSpec{K: k, N: 4}, true)
		outs, rejs = append(outs, o), append(rejs, r)
	}
	f, err := os.OpenFile(outs[1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"torn","ind`)
	f.Close()
	// The same row accepted again in a later input is a duplicate, and a row
	// both rejected and accepted counts as accepted.
	first := readLines(t, whole)[0]
	extra := filepath.Join(dir, "extra.jsonl")
	os.WriteFile(extra, []byte(first+"\n"), 0o644)
	rejFirst := filepath.Join(dir, "rej-extra.jsonl")
	os.WriteFile(rejFirst, []byte(fmt.Sprintf(`{"id":%q,"index":0,"reason":"r","detail":"d"}`+"\n", strings.Split(first, `"`)[3])), 0o644)

	merged, mergedRej := filepath.Join(dir, "merged", "all.jsonl"), filepath.Join(dir, "merged", "rejects.jsonl")
	opts := MergeOptions{Rejects: append(rejs, rejFirst), RejectsOut: mergedRej}
	// The torn row of shard 2 fails the merge unless it is skipped
	// explicitly, and nothing is written then.
	if _, err := Merge(append(outs, extra), merged, opts); !errors.Is(err, ErrTornRows) || !strings.Contains(err.Error(), outs[1]) {
		t.Fatalf("torn row: err = %v, want ErrTornRows naming %s", err, outs[1])
	}
	if _, err := os.Stat(merged); !os.IsNotExist(err) {
		t.Errorf("a failed merge wrote %s", merged)
	}
	opts.SkipBad = true
	st, err := Merge(append(outs, extra), merged, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantLines, wantRej := readLines(t, whole), readLines(t, wholeRej)
	if got := readLines(t, merged); strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("merged results differ from the unsharded run (%d vs %d lines)", len(got), len(wantLines))
	}
	if got := readLines(t, mergedRej); strings.Join(got, "\n") != strings.Join(wantRej, "\n") {
		t.Errorf("merged rejects differ from the unsharded run (%d vs %d lines)", len(got), len(wantRej))
	}
	want := MergeStats{Inputs: 10, Rows: int64(len(wantLines)), Duplicates: 1, Rejects: int64(len(wantRej)), RejectDuplicates: 1, TornLines: 1, TornFiles: []string{outs[1]}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if len(wantLines)+len(wantRej) != 500 {
		t.Errorf("unsharded run has %d rows, want 500 distinct ids", len(wantLines)+len(wantRej))
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "merged")); len(ents) != 2 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, "a.jsonl", `{"id":"x","index":1}`+"\n"+`not json`+"\n"+`{"id":"y","index":0}`+"\n")
	b := writeFile(t, "b.jsonl", `{"id":"z"}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	os.WriteFile(out, []byte("old\n"), 0o644)

	if _, err := Merge([]string{a}, out, MergeOptions{}); err == nil || !strings.Contains(err.Error(), a+":2: not a valid JSON object") {
		t.Errorf("err = %v", err)
	}
	if _, err := Merge([]string{b}, out, MergeOptions{}); err == nil || !strings.Contains(err.Error(), b+`:1: no numeric "index"`) {
		t.Errorf("err = %v", err)
	}
	if data, _ := os.ReadFile(out); string(data) != "old\n" {
		t.Errorf("a failed merge changed the output: %q", data)
	}
	if _, err := Merge([]string{a}, out, MergeOptions{Rejects: []string{b}}); err == nil {
		t.Error("rejects without RejectsOut: no error")
	}
	if _, err := Merge([]string{filepath.Join(dir, "nope.jsonl")}, out, MergeOptions{}); err == nil {
		t.Error("missing input: no error")
	}

	// SkipBad skips the damaged line; the output may be an input.
	st, err := Merge([]string{a}, a, MergeOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.BadLines != 1 || st.Rows != 2 {
		t.Errorf("stats = %+v", st)
	}
	if lines := readLines(t, a); len(lines) != 2 || lines[0] != `{"id":"y","index":0}` {
		t.Errorf("lines = %q", lines)
	}
}

func TestMergeToStdout(t *testing.T) {
	a := writeFile(t, "a.jsonl", `{"id":"x","index":1}`+"\n"+`  {"id":"y","index":0}  `) // no final newline
	p := filepath.Join(t.TempDir(), "stdout")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = f
	st, err := Merge([]string{a}, Stdin, MergeOptions{})
	os.Stdout = old
	f.Close()
	if err != nil || st.Rows != 2 {
		t.Fatalf("Merge: %+v, %v", st, err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != `{"id":"y","index":0}`+"\n"+`{"id":"x","index":1}`+"\n" {
		t.Errorf("stdout = %q", got)
	}
}

// TestReadBackRows checks that rows written by a Writer can themselves be
// read as a corpus when the result carries prompt/response, which eval does.
func TestReadBackRows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, _ := OpenAppend(p)
	w.Write(map[string]any{"id": "q1", "index": 0, "prompt": "P", "response": "R"})
	w.Close()
	r, err := Open(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	row, err := r.Next()
	if err != nil || row.ID != "q1" || row.Prompt != "P" {
		t.Errorf("row = %+v, %v", row, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("want EOF, got %v", err)
	}
	r.Close()
	if _, err := r.Next(); err == nil {
		t.Error("Next after Close: no error")
	}
}

// TestWriterConcurrent checks that rows from parallel workers never
// interleave within a line.
func TestWriterConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	w, _, err := OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	w.SetSyncPolicy(7, time.Millisecond)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				n := int64(g*each + i)
				if err := w.Write(result{ID: itoa(n), Index: n, Plan: strings.Repeat("y", 5000)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, p); len(lines) != workers*each {
		t.Errorf("%d lines, want %d", len(lines), workers*each)
	}
}
