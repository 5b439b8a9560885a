package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/evaluate"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/report"
	"github.com/codeplan-dev/codeplan/synth"
)

// benchFileFlags only make sense for a benchmark file, synthFlags only for a
// synthetic one; giving one to the other kind is a usage error, not a
// silently ignored flag.
var (
	benchFileFlags = []string{"kind", "id-field", "question-field", "answer-field", "choices-field", "steps-field", "skip-bad"}
	synthFlags     = []string{"steps", "n"}
)

func evalCommand() *cli.Command {
	flags := append(modelFlags(8), loraFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "bench", Aliases: []string{"b"}, Usage: "benchmark: a JSONL/JSON `FILE` (GSM8K, MATH, multiple choice, StrategyQA, HotpotQA, BBH shapes) or " +
			strings.Join(evaluate.SynthNames(), ", ")},
		&cli.StringFlag{Name: "modes", Value: "direct,nlplan,codeplan", Usage: "answer modes to compare, comma-separated (\"all\" = every mode; \"auto\" = the one mode the adapter or model was fine-tuned in)"},
		&cli.StringFlag{Name: "format", Value: Auto, Usage: formatUsage},
		&cli.StringFlag{Name: "system", Usage: "system message"},
		&cli.IntFlag{Name: "max-plan-tokens", Value: planner.DefaultMaxPlanTokens, Usage: "token limit of the plan"},
		&cli.IntFlag{Name: "max-tokens", Value: planner.DefaultMaxTokens, Usage: "token limit of the answer"},
		&cli.IntFlag{Name: "limit", Usage: "evaluate only the first `N` items (of the shard, after --shuffle)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "report `DIR`: results.jsonl (a rerun resumes), report.md, report.png, summary.json (default: eval-BENCH)"},
		drainFlag(),
		&cli.StringFlag{Name: "shard", Usage: "evaluate only shard `K/N` of the items (1-based, stable by item id)"},
		&cli.BoolFlag{Name: "shuffle", Usage: "put the items in a random order fixed by --seed (so that --limit takes a random subset)"},
		&cli.StringFlag{Name: "steps", Value: joinInts(evaluate.DefaultSteps), Usage: "synthetic benchmarks: step counts, e.g. 1,2,3 or 1-5"},
		&cli.IntFlag{Name: "n", Value: evaluate.DefaultPerCell, Usage: "synthetic benchmarks: items per kind and step count"},
		&cli.StringFlag{Name: "kind", Usage: "benchmark file: answer kind instead of the detected one (" + kindNames() + ")"},
		&cli.StringFlag{Name: "id-field", Usage: "benchmark file: gjson `PATH` of the item id"},
		&cli.StringFlag{Name: "question-field", Usage: "benchmark file: gjson `PATH` of the question"},
		&cli.StringFlag{Name: "answer-field", Usage: "benchmark file: gjson `PATH` of the gold answer"},
		&cli.StringFlag{Name: "choices-field", Usage: "benchmark file: gjson `PATH` of the options of a multiple-choice item"},
		&cli.StringFlag{Name: "steps-field", Usage: "benchmark file: gjson `PATH` of the number of reasoning steps"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "benchmark file: skip malformed records instead of stopping at the first"},
		&cli.StringFlag{Name: "mc-scoring", Value: evaluate.ScoringGenerate, Usage: "multiple-choice items: generate (the model writes its answer, the letter is extracted) or loglik (the option whose text is most likely after the question, as lm-evaluation-harness: acc by total log-likelihood, acc_norm per byte; plan modes write the plan first)"},
		&cli.BoolFlag{Name: "report-only", Usage: "only rebuild the report from DIR/results.jsonl (no model needed)"},
		&cli.IntFlag{Name: "fewshot", Usage: "put `N` worked examples from --fewshot-file before each question, as earlier turns in each mode's own format"},
		&cli.StringFlag{Name: "fewshot-file", Usage: "few-shot examples: JSONL `FILE` with question (or prompt), response, plan (codeplan) and nl_plan (nlplan), e.g. the benchmark's train split or codeplan synth with another seed; synthetic benchmarks draw their own from another seed when it is not given"},
		&cli.BoolFlag{Name: "log-samples", Usage: "record each item's rendered prompt (chat template and few-shot turns included) in results.jsonl"},
	)
	return &cli.Command{
		Name:      "eval",
		Usage:     "compare direct, natural-language-plan and code-plan answering on a benchmark",
		ArgsUsage: "MODEL.gguf",
		Description: `Every item of --bench is answered in every mode of --modes on one engine
(--parallel sequences with continuous batching). All modes get the same user
message, the question plus a line saying how to state the final answer ("The
answer is ..."), which is then extracted and scored against the gold answer.

Results go to DIR/results.jsonl, one row per item and mode, appended crash-safely:
after Ctrl-C (finishes the items in flight), kill -9 or a crash, rerun the same
command and it does only what is missing. A rerun with another model, adapter,
format or sampling setting into the same DIR is refused, naming both; the default
DIR (eval-BENCH-MODEL[-ADAPTER]) keeps runs of different models apart. The report is built from every row in
the file: DIR/report.md (accuracy per mode with 95% Wilson interval, relative gain
over direct — the CodePlan paper's headline metric —, accuracy by number of steps
and by task, mean tokens and seconds per item), the same tables on stdout,
DIR/report.png and DIR/summary.json.

The synthetic benchmarks (synth = all five families) have exact answers and a
controlled number of reasoning steps, --n items per family and step count.

Examples:
   codeplan eval Meta-Llama-3-8B-Instruct.Q4_K_M.gguf --bench synth --gpu --parallel 16
   codeplan eval model.gguf --lora codeplan-lora.gguf --format trained --bench gsm8k_test.jsonl --output eval-gsm8k-lora
   codeplan eval tiny --bench synth-arith --steps 1-3 --n 2 --max-tokens 32 --output /tmp/eval-demo
   codeplan eval --report-only --output eval-synth`,
		Flags:  flags,
		Action: runEval,
	}
}

// modelArg is the model as given (MODEL or --model), for the default
// report folder; "" if none.
func modelArg(c *cli.Context) string {
	if p := c.String("model"); p != "" {
		return p
	}
	return c.Args().First()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func kindNames() string {
	names := make([]string, len(answer.Kinds))
	for i, k := range answer.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func runEval(c *cli.Context) error {
	benchName := c.String("bench")
	out := c.String("output")
	if c.Bool("report-only") {
		if out == "" {
			if benchName == "" || modelArg(c) == "" {
				return usagef("eval --report-only: --output DIR is required (or --bench with the MODEL and --lora of the run, which name the default folder)")
			}
			out = evaluate.DefaultOut(benchName, modelArg(c), c.String("lora"))
		}
		// Without --bench the title is the benchmark recorded in the rows.
		return writeEvalReport(out, benchName, nil)
	}
	if benchName == "" {
		return usagef("eval: --bench is required: a benchmark file or one of %s", strings.Join(evaluate.SynthNames(), ", "))
	}
	if out == "" {
		out = evaluate.DefaultOut(benchName, modelArg(c), c.String("lora"))
	}
	modes, err := resolveModes(c, c.String("modes"))
	if err != nil {
		return err
	}
	format, err := resolveFormat(c, c.String("format"))
	if err != nil {
		return err
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usagef("eval: --shard: %v", err)
	}
	if c.Int("limit") < 0 {
		return usagef("eval: --limit must not be negative")
	}
	mcScoring := c.String("mc-scoring")
	if mcScoring != evaluate.ScoringGenerate && mcScoring != evaluate.ScoringLoglik {
		return usagef("eval: --mc-scoring %q: want %s or %s", mcScoring, evaluate.ScoringGenerate, evaluate.ScoringLoglik)
	}
	src, err := evalSource(c, benchName)
	if err != nil {
		return err
	}
	loaded, err := evaluate.LoadItems(src)
	if err != nil {
		return usagef("eval: %v", err)
	}
	if n := len(loaded.Skipped); n > 0 {
		log.Warn().Int("records", n).Str("first", loaded.Skipped[0].Error()).Msg("skipped malformed benchmark records (--skip-bad)")
	}
	log.Info().Str("bench", benchName).Int("items", len(loaded.Items)).Str("out", out).Msg("benchmark loaded")

	key, opts, err := modelKey(c)
	if err != nil {
		return err
	}
	// A sequence's context: items too long for it are recorded as wrong
	// with an error, and a rerun with a larger --ctx redoes them.
	seqContext, err := opts.SeqContext(0)
	if err != nil {
		return usageError{err}
	}
	settings := inference.Settings{MaxPlanTokens: c.Int("max-plan-tokens"), MaxTokens: c.Int("max-tokens"), Sampling: samplingFrom(c)}
	var examples []evaluate.Example
	fewShotKey := ""
	if n := c.Int("fewshot"); n != 0 {
		file := c.String("fewshot-file")
		switch {
		case n < 0:
			return usagef("eval: --fewshot must be positive")
		case file != "":
			if examples, err = evaluate.LoadExamples(file, modes); err != nil {
				return usagef("eval: --fewshot-file: %v", err)
			}
			if fewShotKey, err = evaluate.FewShotFileKey(file); err != nil {
				return usagef("eval: --fewshot-file: %v", err)
			}
		case evaluate.IsSynth(benchName):
			// The synthetic benchmarks have a train split of their own:
			// the same families and step counts from another seed.
			if examples, err = evaluate.SynthExamples(src, n); err != nil {
				return usagef("eval: --fewshot: %v", err)
			}
		default:
			return usagef("eval: --fewshot N on a benchmark file needs --fewshot-file FILE (e.g. the benchmark's train split)")
		}
		if len(examples) < n {
			return usagef("eval: --fewshot %d, but only %d examples are available: give more with --fewshot-file FILE", n, len(examples))
		}
	}
	cfg := evaluate.Config{
		Items:    loaded.Items,
		Modes:    modes,
		Prompter: planner.Prompter{Format: format, System: c.String("system")},
		Settings: settings,
		FewShot:  examples, FewShotN: c.Int("fewshot"), LogSamples: c.Bool("log-samples"), Bench: benchName,
		Shard:    shard,
		Limit:    c.Int("limit"),
		Dir:      out,
		ModelKey: key, SeqContext: seqContext, FewShotKey: fewShotKey, MCScoring: mcScoring,
		Logger:   log,
		Progress: true,
	}
	// The results file is opened (locked, its settings checked) before the
	// model loads, so that a wrong folder costs nothing.
	b, err := evaluate.Open(cfg)
	if err != nil {
		return err
	}
	defer b.Close()

	l, eng, err := engineFor(c)
	if err != nil {
		return err
	}
	defer l.Close()
	defer eng.Close()
	cfg.Prompter.Chat = chatTemplater(l.Model)
	// One item per sequence: the engine stays full (a finished item is
	// replaced within a decode step) and no item waits in the queue, so
	// an item's seconds are its own, not its wait for a free sequence.
	cfg.Workers = eng.Parallel()
	// Rows record what a sequence really held (llama.cpp pads it; see
	// generate), and context_full rows the --ctx that fits them.
	cfg.SeqContext, cfg.ContextFor = max(cfg.SeqContext, eng.SlotContext()), eng.ContextFor
	b.CountTokensLive(func() int64 { return eng.Stats().GeneratedTokens })
	cfg.Model, cfg.LoRA = l.Names()
	if mcScoring == evaluate.ScoringLoglik {
		// Four sequences: up to four options scored in one pass.
		txt, err := l.ChoiceScorer(4)
		if err != nil {
			return err
		}
		cfg.Choices = txt
	}
	soft, hard, stop := interruptContexts(c.Duration("drain-timeout"))
	defer stop()
	if testRowHook != nil {
		var n int64
		b.Observe(func(pipeline.Outcome) { n++; testRowHook(n, soft) })
	}
	st, err := evaluate.RunOn(soft, hard, b, eng, cfg)
	if err != nil {
		return err
	}
	if err := writeEvalReport(out, benchName, &st); err != nil {
		return err
	}
	if mcScoring == evaluate.ScoringLoglik {
		printChoiceAccuracy(stdout, out)
	}
	if st.Failed > 0 && !st.Interrupted {
		return fmt.Errorf("%d items failed (see the warnings above); rerun the same command to retry them", st.Failed)
	}
	if st.Interrupted {
		return interrupted("eval")
	}
	return nil
}

// evalSource turns the benchmark flags into an evaluate.Source, refusing
// flags that do not apply to the kind of benchmark chosen.
func evalSource(c *cli.Context, benchName string) (evaluate.Source, error) {
	src := evaluate.Source{Bench: benchName, Seed: int64(c.Uint("seed")), Shuffle: c.Bool("shuffle")}
	wrong, owner := synthFlags, "the synthetic benchmarks"
	if evaluate.IsSynth(benchName) {
		wrong, owner = benchFileFlags, "benchmark files"
		steps, err := synth.ParseSteps(c.String("steps"))
		if err != nil {
			return src, usagef("eval: --steps: %v", err)
		}
		if c.Int("n") <= 0 {
			return src, usagef("eval: --n must be positive")
		}
		src.Steps, src.PerCell = steps, c.Int("n")
	} else {
		src.File = benchdata.Options{IDField: c.String("id-field"), QuestionField: c.String("question-field"),
			AnswerField: c.String("answer-field"), ChoicesField: c.String("choices-field"),
			StepsField: c.String("steps-field"), SkipBad: c.Bool("skip-bad")}
		if k := c.String("kind"); k != "" {
			kind, err := answer.ParseKind(k)
			if err != nil {
				return src, usagef("eval: --kind: %v", err)
			}
			src.File.Kind = kind
		}
	}
	for _, f := range wrong {
		if c.IsSet(f) {
			return src, usagef("eval: --%s does not apply to --bench %s (it is for %s only)", f, benchName, owner)
		}
	}
	return src, nil
}

// writeEvalReport rebuilds the report from every row in out and prints its
// tables, followed by what this run did when st is not nil.
func writeEvalReport(out, benchName string, st *evaluate.Stats) error {
	rep, err := report.BuildReport(out, benchName)
	if err != nil {
		if st != nil && st.Written == 0 && st.Interrupted {
			printEvalStats(stdout, *st, out)
			return nil // stopped before the first row: nothing to report yet
		}
		if os.IsNotExist(err) {
			return usagef("eval: no results in %s: %v", out, err)
		}
		return err
	}
	w := stdout
	fmt.Fprintln(w)
	if err := rep.WriteMarkdown(w, ""); err != nil {
		return err
	}
	if st != nil {
		printEvalStats(w, *st, out)
	}
	fmt.Fprintf(w, "  report            %s, %s, %s\n", filepath.Join(out, report.ReportFile),
		filepath.Join(out, report.ChartFile), filepath.Join(out, report.SummaryFile))
	return nil
}

func printEvalStats(w io.Writer, st evaluate.Stats, out string) {
	fmt.Fprintf(w, "\neval run (%s)\n", st.Elapsed.Round(time.Millisecond))
	if st.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: rerun the same command to resume\n")
	}
	fmt.Fprintf(w, "  item×mode rows    %d selected: %d already done, %d written now, %d failed", st.Pairs, st.Resumed, st.Written, st.Failed)
	if n := st.Errors - st.ContextFull; n > 0 {
		fmt.Fprintf(w, ", %d could not run (prompt too long: raise --ctx or lower --parallel)", n)
	}
	fmt.Fprintln(w)
	if st.ContextFull > 0 {
		c := cutRows{n: int(st.ContextFull), fit: st.FitContext}
		if c.fit <= 0 {
			c.unknown = c.n
		}
		fmt.Fprintf(w, "  context full      %d rows cut before their token limit (finish context_full), could not run: %s\n", c.n, c.advice())
	}
	if st.Written > 0 {
		fmt.Fprintf(w, "  throughput        %.1f generated tok/s (%d prompt + %d generated tokens)\n", st.TokensPerSecond(), st.PromptTok, st.Tokens)
	}
	fmt.Fprintf(w, "  results           %s\n", filepath.Join(out, evaluate.ResultsFile))
}

// printChoiceAccuracy prints acc and acc_norm per mode over the rows of
// out scored by log-likelihood (the report's accuracy is acc).
func printChoiceAccuracy(w io.Writer, out string) {
	rows, err := evaluate.ReadRows(filepath.Join(out, evaluate.ResultsFile))
	if err != nil {
		return
	}
	type tally struct{ n, acc, norm int }
	per := map[planner.Mode]*tally{}
	for _, r := range rows {
		if r.ChoiceScores == nil {
			continue
		}
		t := per[r.Mode]
		if t == nil {
			t = &tally{}
			per[r.Mode] = t
		}
		t.n++
		if r.Correct {
			t.acc++
		}
		if r.ChoiceScores.CorrectNorm {
			t.norm++
		}
	}
	if len(per) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmultiple choice by log-likelihood (acc: total; acc_norm: per byte of the option)\n")
	for _, m := range planner.Modes() {
		if t := per[m]; t != nil {
			fmt.Fprintf(w, "  %-9s acc %5.1f%%  acc_norm %5.1f%%  (%d items)\n", m, 100*float64(t.acc)/float64(t.n), 100*float64(t.norm)/float64(t.n), t.n)
		}
	}
}
