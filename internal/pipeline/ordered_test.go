package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
)

// outputIDs lists the ids of a results file in file order.
func outputIDs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		ids = append(ids, l[strings.Index(l, `"id":"`)+6:][:3])
	}
	return ids
}

// TestOrderedWritesInInputOrder makes early rows finish last and checks
// that an Ordered job still writes them first, that failed rows keep their
// place without blocking later ones.
func TestOrderedWritesInInputOrder(t *testing.T) {
	in := corpus(t, 30)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	job := Job{Name: "ordered", Input: in, Output: out, Workers: 4, Ordered: true, Logger: zerolog.Nop(),
		Process: func(_ context.Context, r dataset.Row) Outcome {
			// Rows early in each group of 4 take longest.
			time.Sleep(time.Duration(4-r.Index%4) * 3 * time.Millisecond)
			if r.ID == "r07" {
				return Outcome{Err: errors.New("transient")}
			}
			return Outcome{Output: row{ID: r.ID, Index: r.Index}}
		}}
	st, err := Run(context.Background(), context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 29 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	ids := outputIDs(t, out)
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("rows out of input order: %v", ids)
		}
	}
}
