// Package pipeline is the resumable row-processing loop shared by extract
// and generate: stream rows from an input, skip those already in the output
// files (or in another shard), process the rest on concurrent workers, and
// append each result to a crash-safe JSONL file. A rerun after Ctrl-C,
// kill -9 or a crash resumes with no duplicates and no lost rows.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/progress"
)

// Outcome is what processing one row produced. Exactly one of Output,
// Reject or Err is set.
type Outcome struct {
	Row          dataset.Row
	Output       any   // written to Job.Output
	Reject       any   // written to Job.Rejects
	Err          error // transient failure: not written, so the next run retries the row
	Tokens       int   // generated tokens, for the progress rate
	PromptTokens int   // prompt tokens processed
}

// Job describes one run.
type Job struct {
	Name    string // for log lines and the progress display, e.g. "extract"
	Input   string
	Read    dataset.ReadOptions
	Output  string // results JSONL (required, resumable)
	Rejects string // rejected rows JSONL ("" = rejects are dropped)
	Shard   dataset.ShardSpec
	Limit   int64 // process at most this many new rows (0 = all)
	Workers int   // concurrent Process calls

	// Process handles one row. ctx is the hard context: it ends only when
	// the user insists (second Ctrl-C).
	Process func(ctx context.Context, row dataset.Row) Outcome
	// Observe, if set, sees every outcome in one goroutine, for statistics.
	Observe func(Outcome)

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer // nil = stderr
}

// Stats count what a run did.
type Stats struct {
	Resumed     int64         `json:"resumed"`      // rows already done by an earlier run
	OtherShards int64         `json:"other_shards"` // rows left to other shards
	Duplicates  int64         `json:"duplicates"`   // repeated ids in the input
	Skipped     int64         `json:"skipped_bad"`  // malformed rows skipped (SkipBad)
	Processed   int64         `json:"processed"`    // rows processed this run
	Written     int64         `json:"written"`      // rows written to the output
	Rejected    int64         `json:"rejected"`     // rows written to the rejects file
	Failed      int64         `json:"failed"`       // rows that failed (retried next run)
	Tokens      int64         `json:"generated_tokens"`
	PromptTok   int64         `json:"prompt_tokens"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Interrupted bool          `json:"interrupted"`
}

// RowsPerSecond is processed rows per second of wall time.
func (s Stats) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Processed) / s.Elapsed.Seconds()
}

// TokensPerSecond is generated tokens per second of wall time.
func (s Stats) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Tokens) / s.Elapsed.Seconds()
}

// ErrNoInputRows is returned when the input holds no usable row.
var ErrNoInputRows = errors.New("no usable rows in the input")

// Run processes the job. Cancelling soft stops reading new rows and lets the
// rows in flight finish; cancelling hard also stops those (they are redone
// by the next run).
func Run(soft, hard context.Context, job Job) (Stats, error) {
	start := time.Now()
	var st Stats
	if job.Workers <= 0 {
		job.Workers = 1
	}
	out, done, err := dataset.OpenAppend(job.Output)
	if err != nil {
		return st, err
	}
	defer out.Close()
	if n := out.DroppedBytes(); n > 0 {
		job.Logger.Warn().Int64("bytes", n).Str("file", job.Output).Msg("dropped a torn last line left by an interrupted run; its row will be redone")
	}
	var rej *dataset.Writer
	if job.Rejects != "" {
		var rdone map[string]bool
		rej, rdone, err = dataset.OpenAppend(job.Rejects)
		if err != nil {
			return st, err
		}
		defer rej.Close()
		for id := range rdone {
			done[id] = true
		}
	}
	in, err := dataset.Open(job.Input, job.Read)
	if err != nil {
		return st, err
	}
	defer in.Close()

	var bar *progress.Reporter
	if job.Progress {
		lg := job.Logger
		bar = progress.New(progress.Options{Out: job.ProgressOut, Total: estimateTotal(job, len(done)), Unit: "rows",
			Counters: []string{"ok", "rej", "fail"}, RateCounter: "tok", Logger: &lg, Message: job.Name})
		defer bar.Finish()
	}

	rows := make(chan dataset.Row)
	results := make(chan Outcome)
	var wg sync.WaitGroup
	for w := 0; w < job.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for row := range rows {
				o := job.Process(hard, row)
				o.Row = row
				results <- o
			}
		}()
	}
	var readErr error
	go func() {
		defer close(rows)
		readErr = feed(soft, job, in, done, &st, rows)
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	var writeErr error
	keep := func(err error) {
		if err != nil && writeErr == nil {
			writeErr = err
		}
	}
	for o := range results {
		switch {
		case o.Err != nil:
			st.Failed++
			if hard.Err() == nil {
				job.Logger.Warn().Str("id", o.Row.ID).Str("source", o.Row.Source).Err(o.Err).Msg("row failed; the next run retries it")
			}
		case o.Output != nil:
			st.Processed++
			st.Written++
			keep(out.Write(o.Output))
		default:
			st.Processed++
			st.Rejected++
			if rej != nil && o.Reject != nil {
				keep(rej.Write(o.Reject))
			}
		}
		st.Tokens += int64(o.Tokens)
		st.PromptTok += int64(o.PromptTokens)
		if job.Observe != nil {
			job.Observe(o)
		}
		if bar != nil {
			switch {
			case o.Err != nil:
				bar.Add("fail", 1)
			case o.Output != nil:
				bar.Add("ok", 1)
			default:
				bar.Add("rej", 1)
			}
			bar.Add("tok", int64(o.Tokens))
			bar.Advance(1)
		}
	}
	st.Skipped = in.Skipped().Total
	st.Elapsed = time.Since(start)
	st.Interrupted = soft.Err() != nil
	keep(out.Close())
	if rej != nil {
		keep(rej.Close())
	}
	switch {
	case readErr != nil:
		return st, readErr
	case writeErr != nil:
		return st, fmt.Errorf("write results: %w", writeErr)
	case st.Processed+st.Failed+st.Resumed+st.OtherShards+st.Duplicates == 0 && !st.Interrupted:
		return st, fmt.Errorf("%s: %w", job.Input, ErrNoInputRows)
	}
	return st, nil
}

// feed sends the rows still to do, in input order, until the input ends,
// the limit is reached or soft is cancelled.
func feed(soft context.Context, job Job, in dataset.Reader, done map[string]bool, st *Stats, rows chan<- dataset.Row) error {
	seen := map[string]bool{}
	var sent int64
	for soft.Err() == nil {
		row, err := in.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var re *dataset.RowError
			if errors.As(err, &re) && job.Read.SkipBad {
				continue
			}
			return err
		}
		switch {
		case !job.Shard.Keep(row.ID):
			st.OtherShards++
			continue
		case done[row.ID]:
			st.Resumed++
			continue
		case seen[row.ID]:
			st.Duplicates++
			continue
		}
		seen[row.ID] = true
		if job.Limit > 0 && sent >= job.Limit {
			return nil
		}
		sent++
		select {
		case rows <- row:
		case <-soft.Done():
			return nil
		}
	}
	return nil
}

// estimateTotal guesses the rows this run will process, for the progress
// bar (0 = unknown: stdin, or a count that failed).
func estimateTotal(job Job, done int) int64 {
	if job.Input == dataset.Stdin {
		return 0
	}
	n, err := dataset.Count(job.Input, job.Read)
	if err != nil || n <= 0 {
		return 0
	}
	if job.Shard.N > 1 {
		n /= int64(job.Shard.N)
	}
	n = max(n-int64(done), 0)
	if job.Limit > 0 && n > job.Limit {
		n = job.Limit
	}
	return n
}
