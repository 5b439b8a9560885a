// Package pipeline is the resumable row-processing loop shared by extract,
// generate and eval: stream rows from an input, skip those already in the
// output files (or in another shard), process the rest on concurrent
// workers, and append each result to a crash-safe JSONL file. A rerun after
// Ctrl-C, kill -9 or a crash resumes with no duplicates and no lost rows;
// a rerun with other settings (model, adapter, mode, template, sampling) is
// refused, so that one file never mixes the results of two configurations.
//
// Open checks the input and opens, locks and checks the outputs before the
// caller loads its model, so that a bad input or a busy output costs nothing.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

	seq int64 // feed order, for Job.Ordered
}

// Job describes one run.
type Job struct {
	Name  string // for log lines and the progress display, e.g. "extract"
	Input string
	// Rows, when not nil, replaces Input: the rows to process, already
	// selected (eval's item × mode pairs); Total is their number.
	Rows    dataset.Reader
	Total   int64
	Read    dataset.ReadOptions
	Output  string // results JSONL (required, resumable)
	Rejects string // rejected rows JSONL ("" = rejects are dropped)
	Shard   dataset.ShardSpec
	Limit   int64 // process at most this many new rows (0 = all)
	Workers int   // concurrent Process calls
	// Ordered writes rows in input order, as batch tools do, instead of
	// as they finish: finished rows wait in a reorder buffer of
	// OrderWindow × Workers rows for the earlier ones, and feeding pauses
	// while it is full. Resumed rows keep their place from the earlier run.
	Ordered bool
	// Settings name what produces the rows (model fingerprint, adapter,
	// mode, template hash, sampling...): stamped into every row written and
	// required of the rows already there (see dataset.Settings).
	Settings dataset.Settings
	// Redo, when set, sees every row already in Output or Rejects; a row
	// for which it returns true is processed again instead of counting as
	// done (see dataset.AppendOptions.Redo), and Run removes it from its
	// file before the first write, so that the new row replaces it.
	Redo func(row []byte) bool

	// Process handles one row. ctx is the hard context: it ends only when
	// the user insists (second Ctrl-C).
	Process func(ctx context.Context, row dataset.Row) Outcome
	// Observe, if set, sees every outcome in one goroutine, for statistics.
	Observe func(Outcome)

	Logger      zerolog.Logger
	Progress    bool
	ProgressOut io.Writer // nil = stderr
}

// OrderWindow is the reorder buffer of an Ordered job, in rows per worker:
// large enough that one slow row rarely stalls the others, small enough to
// bound the memory of rows held back.
const OrderWindow = 4

// Stats count what a run did.
type Stats struct {
	Resumed     int64         `json:"resumed"`      // rows already done by an earlier run
	OtherShards int64         `json:"other_shards"` // rows left to other shards
	Duplicates  int64         `json:"duplicates"`   // repeated ids in the input
	Skipped     int64         `json:"skipped_bad"`  // malformed rows skipped (--skip-bad)
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
var ErrNoInputRows = dataset.BadInputf("no usable rows in the input")

// Batch is a job whose input was checked and whose outputs are open and
// locked; Run processes it, Close releases it.
type Batch struct {
	job      Job
	out, rej *dataset.Writer
	done     map[string]bool
	total    int64 // rows in the input (-1 = unknown)
	ran      bool
	// observers see every outcome after Run's own observe.
	observers []func(Outcome)
	// liveTokens, when set, drives the progress display's token count
	// (CountTokensLive).
	liveTokens func() int64
}

// Open checks the job's input (see dataset.Check), then opens, locks and
// checks its output and rejects files, so that every problem with the
// files shows before the caller loads a model. Close the batch in all cases.
func Open(job Job) (*Batch, error) {
	if job.Workers <= 0 {
		job.Workers = 1
	}
	b := &Batch{job: job, total: job.Total}
	if job.Rows == nil {
		if err := checkDistinct(job.Input, job.Output, job.Rejects); err != nil {
			return nil, err
		}
		n, err := dataset.Check(job.Input, job.Read)
		if err != nil {
			return nil, err
		}
		b.total = n
	}
	// Both outputs are checked before either is created.
	for _, p := range []string{job.Output, job.Rejects} {
		if p != "" && p != dataset.Stdin {
			if err := dataset.CheckTarget(p); err != nil {
				return nil, err
			}
		}
	}
	var err error
	opts := dataset.AppendOptions{Settings: job.Settings, Redo: job.Redo}
	b.out, b.done, err = dataset.OpenAppendWith(job.Output, opts)
	if err != nil {
		return nil, err
	}
	if n := b.out.DroppedBytes(); n > 0 {
		job.Logger.Warn().Int64("bytes", n).Str("file", job.Output).Msg("dropped a torn last line left by an interrupted run; its row will be redone")
	}
	if job.Rejects != "" {
		var rdone map[string]bool
		b.rej, rdone, err = dataset.OpenAppendWith(job.Rejects, opts)
		if err != nil {
			b.out.Abandon()
			return nil, err
		}
		for id := range rdone {
			b.done[id] = true
		}
	}
	return b, nil
}

// checkDistinct refuses an input that is also an output: resuming would
// take every input row for a finished one.
func checkDistinct(input string, outputs ...string) error {
	in, err := os.Stat(input)
	if err != nil {
		return nil // dataset.Check words this
	}
	for _, o := range outputs {
		if st, err := os.Stat(o); err == nil && os.SameFile(in, st) {
			return dataset.BadInputf("the input %s is also an output file; write the results to another file", input)
		}
	}
	return nil
}

// SetWorkers sets the number of concurrent process calls when it is only
// known after Open (from the engine the model was loaded into); n <= 0
// keeps the job's.
func (b *Batch) SetWorkers(n int) {
	if n > 0 {
		b.job.Workers = n
	}
}

// Observe adds fn to the observers of Run's outcomes, called after the one
// passed to Run, in the collecting goroutine: the next outcome is not
// collected before fn returns.
func (b *Batch) Observe(fn func(Outcome)) { b.observers = append(b.observers, fn) }

// CountTokensLive makes the progress display's token rate follow
// generated(), a running count of the tokens generated so far (the
// engine's), read a few times a second, instead of adding each row's
// tokens when the row finishes: on a slow model a row takes minutes, and
// the rate would read 0 tok/s until then. The run's Stats still count the
// tokens of finished rows.
func (b *Batch) CountTokensLive(generated func() int64) { b.liveTokens = generated }

// Done is the number of rows already in the output files.
func (b *Batch) Done() int { return len(b.done) }

// Close releases the output files. Files that Open created and that were
// never written to are removed, so that a run that failed to start (a
// model that does not load) leaves nothing behind.
func (b *Batch) Close() error {
	if b.ran {
		return nil // Run closed them
	}
	b.ran = true
	err := b.out.Abandon()
	if b.rej != nil {
		if rerr := b.rej.Abandon(); err == nil {
			err = rerr
		}
	}
	return err
}

// Run processes the job in one call: Open, Batch.Run with job.Process and
// job.Observe, Close.
func Run(soft, hard context.Context, job Job) (Stats, error) {
	b, err := Open(job)
	if err != nil {
		return Stats{}, err
	}
	defer b.Close()
	return b.Run(soft, hard, job.Process, job.Observe)
}

// Run processes the rows not yet done with process (observe, if not nil,
// sees every outcome in one goroutine). Cancelling soft stops reading new
// rows and lets the rows in flight finish; cancelling hard also stops those
// (they are redone by the next run). A failed write stops the run: the rows
// in flight are dropped and redone by the next run. Run closes the outputs;
// it may be called once.
func (b *Batch) Run(soft, hard context.Context, process func(context.Context, dataset.Row) Outcome, observe func(Outcome)) (Stats, error) {
	if b.ran {
		return Stats{}, errors.New("pipeline: Batch.Run called twice")
	}
	b.ran = true
	job, out, rej, done := b.job, b.out, b.rej, b.done
	start := time.Now()
	var st Stats
	defer out.Close()
	if rej != nil {
		defer rej.Close()
	}
	in := job.Rows
	if in == nil {
		var err error
		if in, err = dataset.Open(job.Input, job.Read); err != nil {
			return st, err
		}
	}
	defer in.Close()
	// Rows that Job.Redo sent back are removed from the files now, when the
	// run starts (a run that fails to start leaves the files as they were),
	// so that their new rows replace them instead of repeating their ids.
	for _, w := range []*dataset.Writer{out, rej} {
		if w == nil {
			continue
		}
		n, err := w.DropRedone()
		if err != nil {
			return st, err
		}
		if n > 0 {
			job.Logger.Info().Int("rows", n).Str("file", w.Name()).Msg("redoing rows rejected for a smaller context: their old rows are removed")
		}
	}

	var bar *progress.Reporter
	if job.Progress {
		lg := job.Logger
		bar = progress.New(progress.Options{Out: job.ProgressOut, Total: b.estimateTotal(), Unit: "rows",
			Counters: []string{"ok", "rej", "fail"}, RateCounter: "tok", Logger: &lg, Message: job.Name})
		defer bar.Finish()
		if b.liveTokens != nil {
			stopLive := countLive(func(n int64) { bar.Add("tok", n) }, b.liveTokens)
			defer stopLive()
		}
	}

	// feeding ends with soft, or when results can no longer be written.
	feeding, stopFeeding := context.WithCancel(soft)
	defer stopFeeding()
	rows := make(chan dataset.Row)
	results := make(chan Outcome)
	// Rows are numbered as they are dispatched; with Ordered, a slot of
	// window is taken per row and given back when its outcome is handled
	// in order, which bounds the reorder buffer.
	type numbered struct {
		row dataset.Row
		seq int64
	}
	jobs := make(chan numbered)
	var window chan struct{}
	if job.Ordered {
		window = make(chan struct{}, OrderWindow*max(1, job.Workers))
	}
	go func() {
		defer close(jobs)
		var seq int64
		for {
			// Not only range over rows: the feeder may be blocked reading
			// an input that stays open (a pipe); when feeding stops, the
			// rows in flight finish without waiting for it.
			var row dataset.Row
			var ok bool
			select {
			case row, ok = <-rows:
			case <-feeding.Done():
			}
			if !ok {
				return
			}
			// A row already taken from the feeder is still dropped when
			// feeding stops meanwhile, as feed itself would: rows not
			// dispatched are redone by the next run.
			if window != nil {
				select {
				case window <- struct{}{}:
				case <-feeding.Done():
					continue
				}
			}
			select {
			case jobs <- numbered{row, seq}:
				seq++
			case <-feeding.Done():
				if window != nil {
					<-window
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < job.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				o := process(hard, j.row)
				o.Row, o.seq = j.row, j.seq
				results <- o
			}
		}()
	}
	type fedResult struct {
		all bool
		err error
	}
	fed := make(chan fedResult, 1)
	var feedMu sync.Mutex // guards the feeder's counters in st
	go func() {
		defer close(rows)
		all, err := feed(feeding, job, in, done, &st, &feedMu, rows)
		fed <- fedResult{all, err}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	var writeErr error
	// keep records the first write error and reports whether err failed.
	keep := func(err error) bool {
		if err != nil && writeErr == nil {
			writeErr = err
			stopFeeding()
		}
		return err != nil
	}
	handle := func(o Outcome) {
		if writeErr != nil {
			return // the run ends with writeErr; a rerun redoes this row
		}
		switch {
		case o.Err != nil:
			st.Failed++
			if hard.Err() == nil {
				job.Logger.Warn().Str("id", o.Row.ID).Str("source", o.Row.Source).Err(o.Err).Msg("row failed; the next run retries it")
			}
		case o.Output != nil:
			if keep(out.Write(o.Output)) {
				return // not written, so not done: a rerun redoes the row
			}
			st.Processed++
			st.Written++
		default:
			if rej != nil && o.Reject != nil && keep(rej.Write(o.Reject)) {
				return
			}
			st.Processed++
			st.Rejected++
		}
		st.Tokens += int64(o.Tokens)
		st.PromptTok += int64(o.PromptTokens)
		if observe != nil {
			observe(o)
		}
		for _, fn := range b.observers {
			fn(o)
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
			if b.liveTokens == nil {
				bar.Add("tok", int64(o.Tokens))
			}
			bar.Advance(1)
		}
	}
	pending := map[int64]Outcome{}
	var next int64
	for o := range results {
		if window == nil {
			handle(o)
			continue
		}
		pending[o.seq] = o
		for p, ok := pending[next]; ok; p, ok = pending[next] {
			delete(pending, next)
			next++
			handle(p)
			<-window
		}
	}
	var f fedResult
	select {
	case f = <-fed:
	default:
		if feeding.Err() == nil {
			f = <-fed // the rows ended: the feeder is returning
		}
		// Else feeding stopped while the feeder waits on its input: what
		// it has not read is not done, and the next run reads it.
	}
	readErr, fedAll := f.err, f.all
	feedMu.Lock()
	defer feedMu.Unlock()
	st.Skipped = in.Skipped().Total
	st.Elapsed = time.Since(start)
	st.Interrupted = hard.Err() != nil || (soft.Err() != nil && !fedAll)
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
		name := job.Input
		if job.Rows != nil {
			name = job.Name + ": no rows selected"
		}
		return st, fmt.Errorf("%s: %w", name, ErrNoInputRows)
	}
	return st, nil
}

// feed sends the rows still to do, in input order, until the input ends,
// the limit is reached or soft is cancelled; all says it got to the end.
func feed(soft context.Context, job Job, in dataset.Reader, done map[string]bool, st *Stats, mu *sync.Mutex, rows chan<- dataset.Row) (all bool, err error) {
	seen := map[string]bool{}
	var sent int64
	for soft.Err() == nil {
		row, err := in.Next()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			var re *dataset.RowError
			if errors.As(err, &re) && job.Read.SkipBad {
				continue
			}
			return false, err
		}
		mu.Lock()
		skip := true
		switch {
		case !job.Shard.Keep(row.ID):
			st.OtherShards++
		case done[row.ID]:
			st.Resumed++
		case seen[row.ID]:
			st.Duplicates++
		default:
			skip = false
		}
		mu.Unlock()
		if skip {
			continue
		}
		seen[row.ID] = true
		if job.Limit > 0 && sent >= job.Limit {
			return true, nil
		}
		sent++
		select {
		case rows <- row:
		case <-soft.Done():
			return false, nil
		}
	}
	return false, nil
}

// estimateTotal guesses the rows this run will process, for the progress
// bar (0 = unknown: stdin, or a count that failed).
func (b *Batch) estimateTotal() int64 {
	n, job := b.total, b.job
	if n <= 0 {
		return 0
	}
	if job.Shard.N > 1 {
		n /= int64(job.Shard.N)
	}
	n = max(n-int64(len(b.done)), 0)
	if job.Limit > 0 && n > job.Limit {
		n = job.Limit
	}
	return n
}

// Rows is a dataset.Reader over rows already in memory, for Job.Rows.
func Rows(rows []dataset.Row) dataset.Reader { return &sliceReader{rows: rows} }

type sliceReader struct {
	rows []dataset.Row
	i    int
}

func (s *sliceReader) Next() (dataset.Row, error) {
	if s.i >= len(s.rows) {
		return dataset.Row{}, io.EOF
	}
	s.i++
	return s.rows[s.i-1], nil
}

func (s *sliceReader) Skipped() dataset.Skips { return dataset.Skips{} }
func (s *sliceReader) Close() error           { return nil }

// liveTokenPeriod is how often CountTokensLive's counter is read.
const liveTokenPeriod = 250 * time.Millisecond

// countLive passes to add what generated() grew by since the run started,
// every liveTokenPeriod and once more when stopped.
func countLive(add func(int64), generated func() int64) (stop func()) {
	last := generated()
	sync := func() {
		now := generated()
		if now > last {
			add(now - last)
			last = now
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(liveTokenPeriod)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				sync()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		sync()
	}
}
