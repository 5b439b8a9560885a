package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchCorpus writes n WebInstruct-sized rows (about 1.5 KB each).
func benchCorpus(b *testing.B, n int) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "corpus.jsonl")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	body := strings.Repeat("lorem ipsum dolor sit amet ", 20)
	for i := range n {
		fmt.Fprintf(w, `{"question":"Q%d %s","answer":"A%d %s %s","source":"web"}`+"\n", i, body, i, body, body)
	}
	w.Flush()
	f.Close()
	return p
}

func BenchmarkReadJSONL(b *testing.B) {
	const n = 20000
	p := benchCorpus(b, n)
	b.ResetTimer()
	for range b.N {
		r, err := Open(p, ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkMerge(b *testing.B) {
	const n, shards = 20000, 4
	dir := b.TempDir()
	var outs []string
	var ws []*Writer
	for k := range shards {
		o := filepath.Join(dir, fmt.Sprintf("s%d.jsonl", k))
		w, _, err := OpenAppend(o)
		if err != nil {
			b.Fatal(err)
		}
		w.SetSyncPolicy(0, 0)
		outs, ws = append(outs, o), append(ws, w)
	}
	plan := strings.Repeat("x = step()\n", 40)
	for i := range n {
		id := StableID(fmt.Sprint(i), "")
		s := ShardSpec{}
		for k := 1; k <= shards; k++ {
			if s = (ShardSpec{K: k, N: shards}); s.Keep(id) {
				break
			}
		}
		if err := ws[s.K-1].Write(map[string]any{"id": id, "index": i, "plan": plan}); err != nil {
			b.Fatal(err)
		}
	}
	for _, w := range ws {
		w.Close()
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Merge(outs, filepath.Join(dir, "merged.jsonl"), MergeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
