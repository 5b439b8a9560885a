package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/loglik"
	"github.com/codeplan-dev/codeplan/planner"
)

// perplexityRow is one line of perplexity's per-row output.
type perplexityRow struct {
	ID     string `json:"id"`
	Index  int64  `json:"index"`
	Tokens int    `json:"tokens"` // scored tokens
	// LogLik is the summed log-likelihood of the scored tokens (nats).
	LogLik      float64 `json:"loglik"`
	MeanLogProb float64 `json:"mean_logprob"`
	Perplexity  float64 `json:"perplexity"`
	Chunks      int     `json:"chunks,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// perplexitySummary is the run's overall figure.
type perplexitySummary struct {
	Rows       int     `json:"rows"`
	Skipped    int     `json:"rows_skipped"`
	Tokens     int     `json:"tokens"`
	LogLik     float64 `json:"loglik"`
	Perplexity float64 `json:"perplexity"`
	// RowMedian is the median of the rows' perplexities.
	RowMedian float64 `json:"row_perplexity_median"`
	Seconds   float64 `json:"seconds"`
}

func perplexityCommand() *cli.Command {
	flags := append(modelFlags(4), loraFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "rows: .jsonl[.gz], .json, .parquet or - for stdin"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "per-row results, JSONL `PATH` (default: stdout, with the summary on stderr)"},
		&cli.StringFlag{Name: "text-field", Value: "text", Usage: "gjson `PATH` of the text to score from its start"},
		&cli.StringFlag{Name: "prompt-field", Usage: "gjson `PATH` of the prompt (with --response-field; default: auto-detect)"},
		&cli.StringFlag{Name: "response-field", Usage: "score this response (gjson `PATH`) given the row's prompt in the model's chat template, instead of --text-field"},
		&cli.StringFlag{Name: "id-field", Usage: "gjson `PATH` of a row id (default: \"id\", else a hash)"},
		&cli.StringFlag{Name: "system", Usage: "system message before the prompt (with --response-field)"},
		&cli.IntFlag{Name: "chunk", Usage: "score like llama.cpp's llama-perplexity -c `N`: cut each text into chunks of N tokens (BOS first when the model adds one), score only the second half of each chunk"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "count and skip malformed rows instead of stopping at the first"},
		&cli.Int64Flag{Name: "limit", Usage: "score at most `N` rows"},
	)
	return &cli.Command{
		Name:      "perplexity",
		Usage:     "per-row and overall perplexity of texts, or of responses given their prompts",
		ArgsUsage: "MODEL.gguf",
		Description: `Scores every row by prompt processing only (nothing is generated) and writes one
JSON line per row: id, scored tokens, summed log-likelihood (nats), mean log-prob
per token and perplexity = exp(-mean). The summary gives the perplexity over all
tokens of all rows.

By default the text in --text-field is scored from its start (its first token, BOS
on models that add one, is context). With --response-field, the response is scored
given its prompt rendered in the model's chat template (a user turn, then the
assistant header): the perplexity a fine-tuned model assigns to its targets.

--chunk N reproduces llama.cpp's llama-perplexity -c N on the same text, to compare
numbers: chunks of N tokens, the second half of each scored. A row shorter than N
tokens has no chunk and is skipped. Each sequence holds --ctx / --parallel tokens;
a row longer than that is an error naming the row (raise --ctx or use --chunk).

Examples:
   codeplan perplexity model.gguf --input wiki.jsonl --output ppl.jsonl
   codeplan perplexity model.gguf --lora codeplan-lora.gguf --input plans.jsonl --response-field response
   codeplan perplexity model.gguf --input one-text.jsonl --chunk 512 --ctx 2048   # like llama-perplexity -c 512`,
		Flags:  flags,
		Action: perplexityAction,
	}
}

func perplexityAction(c *cli.Context) (err error) {
	input := c.String("input")
	if input == "" {
		return usagef("perplexity: --input is required")
	}
	chunk := c.Int("chunk")
	pair := c.IsSet("response-field")
	switch {
	case pair && c.IsSet("text-field"):
		return usagef("perplexity: --text-field and --response-field exclude each other (score a text, or a response given its prompt)")
	case pair && chunk > 0:
		return usagef("perplexity: --chunk scores plain texts; it does not apply to --response-field")
	case c.IsSet("chunk") && chunk < 4:
		return usagef("perplexity: --chunk %d: want at least 4 tokens", chunk)
	}
	read := dataset.ReadOptions{IDField: c.String("id-field"), SkipBad: c.Bool("skip-bad")}
	if pair {
		read.PromptField, read.ResponseField = c.String("prompt-field"), c.String("response-field")
	} else {
		read.PromptField, read.PromptOnly = c.String("text-field"), true
	}
	if o := c.String("output"); o != "" && o != "-" {
		if a, err := os.Stat(input); err == nil {
			if b, err := os.Stat(o); err == nil && os.SameFile(a, b) {
				return usagef("perplexity: --output %s is the input file: it would be overwritten", o)
			}
		}
	}
	// Open the input before the model loads: a bad path costs nothing.
	rd, err := dataset.Open(input, read)
	if err != nil {
		return usageError{err}
	}
	defer rd.Close()
	l, err := openModel(c)
	if err != nil {
		return err
	}
	defer l.Close()
	scorer, err := loglik.NewText(l.model, l.ctx)
	if err != nil {
		return err
	}
	defer scorer.Close()
	if chunk > scorer.Window()+1 {
		return usagef("perplexity: --chunk %d does not fit a sequence of %d tokens: raise --ctx to at least %d (it is shared by --parallel %d sequences)",
			chunk, scorer.Window(), chunk*l.ctx.Sequences(), l.ctx.Sequences())
	}
	var prompter planner.Prompter
	if pair {
		prompter = planner.Prompter{Mode: planner.Direct, Format: planner.Trained, Chat: chatTemplater(l.model), System: c.String("system")}
	}

	var sum perplexitySummary
	out, summaryOut := io.Writer(stdout), io.Writer(os.Stderr)
	var file *os.File
	if p := c.String("output"); p != "" && p != "-" {
		lock, lerr := lockOutputFlag("output", p)
		if lerr != nil {
			return lerr
		}
		defer lock.Unlock() // deferred first, so released after the file is closed
		if file, err = os.Create(p); err != nil {
			return usageError{err}
		}
		defer func() {
			file.Close()
			if err != nil && sum.Rows == 0 {
				os.Remove(p) // a run that scored nothing leaves no empty file behind
			}
		}()
		out, summaryOut = file, stdout
	}
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)

	start := time.Now()
	var total loglik.Tally
	var rowPPL []float64
	// Rows are scored in groups of about --parallel requests, so that the
	// sequences of the scoring context are used together.
	type pending struct {
		row  perplexityRow
		reqs []loglik.Request
	}
	var group []pending
	nreq := 0
	flush := func() error {
		var reqs []loglik.Request
		for _, p := range group {
			reqs = append(reqs, p.reqs...)
		}
		res, err := scorer.Score(reqs)
		if err != nil {
			return err
		}
		k := 0
		for _, p := range group {
			var t loglik.Tally
			for range p.reqs {
				t.Add(res[k])
				k++
			}
			total.Merge(t)
			row := p.row
			row.Tokens, row.LogLik = t.Tokens, t.LogLik
			row.MeanLogProb, row.Perplexity = t.LogLik/float64(t.Tokens), t.Perplexity()
			rowPPL = append(rowPPL, row.Perplexity)
			sum.Rows++
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
		group, nreq = group[:0], 0
		return nil
	}
	limit := c.Int64("limit")
	for n := int64(0); limit <= 0 || n < limit; n++ {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // a *dataset.RowError maps to exit 2
		}
		p := pending{row: perplexityRow{ID: row.ID, Index: row.Index}}
		switch {
		case pair:
			var ph planner.Phase
			if ph, err = prompter.AnswerPrompt(nil, row.Prompt, ""); err == nil {
				var r loglik.Request
				r, err = scorer.Pair(ph.Text, strings.TrimSpace(row.Response)) // as finetune's target
				p.reqs = []loglik.Request{r}
			}
		case chunk > 0:
			p.reqs, err = scorer.Chunks(row.Prompt, chunk)
			p.row.Chunks = len(p.reqs)
			if err == nil && len(p.reqs) == 0 {
				log.Warn().Str("row", row.Source).Int("chunk", chunk).Msg("row is shorter than one chunk: skipped")
				sum.Skipped++
				continue
			}
		default:
			var r loglik.Request
			r, err = scorer.Whole(row.Prompt)
			p.reqs = []loglik.Request{r}
		}
		if err != nil {
			return usagef("%s (id %s): %v", row.Source, row.ID, err)
		}
		group = append(group, p)
		nreq += len(p.reqs)
		if nreq >= l.ctx.Sequences() {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(group) > 0 {
		if err := flush(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
	}
	sum.Tokens, sum.LogLik, sum.Perplexity = total.Tokens, total.LogLik, total.Perplexity()
	sum.RowMedian = median(rowPPL)
	sum.Seconds = time.Since(start).Seconds()
	if sum.Rows == 0 {
		return usagef("perplexity: %s: no row to score", input)
	}
	model := filepath.Base(l.path)
	if l.adapter != nil {
		model += " + " + filepath.Base(l.adapter.Path())
	}
	fmt.Fprintf(summaryOut, "perplexity %.4f over %d tokens of %d rows (%s; row median %.4f; %.1f tok/s)\n",
		sum.Perplexity, sum.Tokens, sum.Rows, model, sum.RowMedian, float64(sum.Tokens)/math.Max(sum.Seconds, 1e-9))
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
