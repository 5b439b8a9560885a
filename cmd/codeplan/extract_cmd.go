package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/extract"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/local"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/remote"
)

// The paper reports these mean word counts for its 2M extracted rows.
const paperPromptWords, paperPlanWords, paperResponseWords = 36.2, 45.7, 134.7

func inputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "input `PATH`: .jsonl[.gz], .json, .parquet, or - for stdin"},
		&cli.StringFlag{Name: "prompt-field", Usage: "gjson `PATH` of the prompt in each row (default: auto-detect prompt/instruction/question/messages)"},
		&cli.StringFlag{Name: "response-field", Usage: "gjson `PATH` of the response (default: auto-detect)"},
		&cli.StringFlag{Name: "id-field", Usage: "gjson `PATH` of a row id (default: \"id\", else a hash of prompt and response)"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "count and skip malformed rows instead of stopping at the first"},
		&cli.StringFlag{Name: "shard", Usage: "process only shard `K/N` (1-based, stable by row id; I+1/N for a 0-based index I)"},
		&cli.Int64Flag{Name: "limit", Usage: "process at most `N` new rows"},
	}
}

func samplingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "temperature", Usage: "sampling temperature (0 = greedy)"},
		&cli.Float64Flag{Name: "top-p", Usage: "nucleus sampling threshold (0 = off)"},
		&cli.IntFlag{Name: "top-k", Usage: "top-k sampling (0 = off)"},
		&cli.Float64Flag{Name: "min-p", Usage: "min-p sampling (0 = off)"},
		&cli.Float64Flag{Name: "repeat-penalty", Value: 1, Usage: "penalty for repeated tokens (1 = off)"},
		&cli.UintFlag{Name: "seed", Usage: "sampling seed"},
	}
}

func samplingFrom(c *cli.Context) llama.SamplerOptions {
	return llama.SamplerOptions{
		Temperature:   float32(c.Float64("temperature")),
		TopP:          float32(c.Float64("top-p")),
		TopK:          c.Int("top-k"),
		MinP:          float32(c.Float64("min-p")),
		RepeatPenalty: float32(c.Float64("repeat-penalty")),
		Seed:          uint32(c.Uint("seed")),
	}
}

func readOptions(c *cli.Context) dataset.ReadOptions {
	return dataset.ReadOptions{
		PromptField:   c.String("prompt-field"),
		ResponseField: c.String("response-field"),
		IDField:       c.String("id-field"),
		SkipBad:       c.Bool("skip-bad"),
	}
}

// drainFlag bounds the wait for rows in flight after the first Ctrl-C or
// SIGTERM (see interruptContexts).
func drainFlag() cli.Flag {
	return &cli.DurationFlag{Name: "drain-timeout", Value: defaultDrain, Usage: "after the first Ctrl-C or SIGTERM, wait at most this long for the rows in flight, then stop them (a rerun redoes them; 0 = wait for them all)"}
}

// defaultDrain is --drain-timeout's default: long enough for a fast model's
// rows to finish, short enough that a scheduler's grace period (a
// `timeout`, Slurm, Kubernetes: often 30 s or more) is not overrun by much.
const defaultDrain = 30 * time.Second

// interruptContexts returns a soft context cancelled by the first Ctrl-C
// or SIGTERM (stop taking new work, finish what is running) and a hard one
// cancelled by the second, or drain after the first when drain > 0 (drop
// running work; the next run redoes it). A slow model's rows in flight
// once kept generate running 237 s past a `timeout 120`.
func interruptContexts(drain time.Duration) (soft, hard context.Context, stop func()) {
	handleSignals()
	soft, cancelSoft := context.WithCancel(context.Background())
	hard, cancelHard := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			n++
			if n == 1 {
				if drain > 0 {
					log.Warn().Float64("drain_timeout_s", drain.Seconds()).Msg("interrupted: finishing the rows in flight for at most --drain-timeout (Ctrl-C again to stop at once; a rerun resumes)")
					time.AfterFunc(drain, func() {
						if hard.Err() == nil {
							log.Warn().Float64("drain_timeout_s", drain.Seconds()).Msg("--drain-timeout is over: stopping the rows still in flight; the next run redoes them")
							cancelHard()
						}
					})
				} else {
					log.Warn().Msg("interrupted: finishing the rows in flight (Ctrl-C again to stop at once; a rerun resumes)")
				}
				cancelSoft()
			} else {
				log.Warn().Msg("stopping now; unfinished rows will be redone by the next run")
				cancelHard()
			}
		}
	}()
	return soft, hard, func() {
		signal.Stop(ch)
		cancelSoft()
		cancelHard()
	}
}

func extractCommand() *cli.Command {
	flags := append(append(modelFlags(8), loraFlags()...), inputFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "accepted rows, JSONL `PATH` (appended to; a rerun resumes)"},
		drainFlag(),
		&cli.StringFlag{Name: "rejects", Usage: "rejected rows with their reason, JSONL `PATH` (default: OUTPUT with .rejects.jsonl)"},
		&cli.StringFlag{Name: "template", Usage: "extraction prompt: paper (default: the CodePlan paper's, verbatim), structured, or a `FILE` with {{prompt}} and {{response}}"},
		&cli.IntFlag{Name: "max-plan-tokens", Value: planner.DefaultExtractPlanTokens, Usage: "token limit of a plan; plans that hit it did not terminate and are rejected (384, above the 256 of answering commands, because the paper's plans run to 200 words and a cut plan is lost)"},
		&cli.IntFlag{Name: "max-words", Value: 200, Usage: "reject plans longer than `N` words as too_long (the paper asks for less than 200); 0 (or -1) = no limit"},
		&cli.IntFlag{Name: "min-words", Value: 5, Usage: "reject plans shorter than `N` words as too_short; 0 (or -1) = no minimum"},
		&cli.StringFlag{Name: "backend", Value: "llama", Usage: "llama (local GGUF) or openai (an OpenAI-compatible server: vLLM, llama.cpp server, ollama, codeplan serve)"},
		&cli.StringSliceFlag{Name: "base-url", Usage: "server `URL` for --backend openai, e.g. http://gpu-node:8000/v1; repeat it for several servers (round-robin; one that stops answering is skipped)"},
		&cli.IntFlag{Name: "max-connection-failures", Value: remote.DefaultMaxConnFailures, Usage: "--backend openai: stop the run after `N` failed connections in a row to every server (done rows are kept; 0 = never)"},
		&cli.StringFlag{Name: "api-key", EnvVars: []string{"OPENAI_API_KEY"}, Usage: "bearer token for --backend openai"},
		&cli.IntFlag{Name: "concurrency", Value: 16, Usage: "requests in flight for --backend openai"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "per-request timeout for --backend openai"},
		&cli.IntFlag{Name: "retries", Value: 5, Usage: "retries with backoff for --backend openai"},
		&cli.StringFlag{Name: "summary", Usage: "also write the run summary as JSON to `PATH`"},
		&cli.StringFlag{Name: "reference-field", Usage: "gjson `PATH` of a reference plan in each input row (e.g. plan): each accepted row records whether its plan equals it, and the summary counts exact matches"},
		&cli.BoolFlag{Name: "score-gain", Usage: "score every plan's information gain (beyond the paper): mean log-likelihood per response token with and without the plan, by prompt processing only; adds loglik_with_plan, loglik_without_plan, gain_nats to the rows"},
		&cli.StringFlag{Name: "score-model", Usage: "GGUF `PATH` of the model that scores the gain (default: the extraction model; needed with --backend openai)"},
		&cli.Float64Flag{Name: "min-gain", DefaultText: "off: no row is rejected for its gain", Usage: "reject accepted rows whose gain_nats is below `X` nats per token as low_gain (implies --score-gain); any finite number, 0 included, turns the filter on"},
		&cli.BoolFlag{Name: "predict", Value: true, Usage: "after a local run, time one batch at the run's mean token counts (what 'codeplan bench' predicts) and show the achieved ratio"},
		&cli.BoolFlag{Name: "prefix-cache", Value: true, Usage: "compute the instruction part of the extraction prompt once and copy it into every row's sequence (uses one extra sequence of --ctx; --prefix-cache=false to turn off)"},
	)
	return &cli.Command{
		Name:      "extract",
		Usage:     "extract code-form plans from (prompt, response) rows with an instruct model",
		ArgsUsage: "MODEL.gguf",
		Description: `For every input row, the model reads the prompt and the response and writes the
plan the response follows, as Python-like pseudocode (the CodePlan data recipe).
Plans that did not terminate, contain no code, repeat themselves or copy the
response go to the rejects file with their reason.

Rows are decoded --parallel at a time with continuous batching. Output files are
appended crash-safely: rerun the same command after Ctrl-C, kill -9 or a crash and
it resumes with no duplicates and no lost rows; a rerun with another model,
template, sampling or filter setting is refused, and a second run on the same
--output stops at once (the first holds a lock). Split a corpus over machines with
--shard K/N and combine with 'codeplan merge'.

Examples:
   codeplan extract Meta-Llama-3-8B-Instruct.Q4_K_M.gguf --input webinstruct.parquet \
       --output plans.jsonl --parallel 16 --gpu
   codeplan extract examples/mini/extractor.gguf --input examples/mini/demo.jsonl --template paper \
       --reference-field plan --output /tmp/plans.jsonl      (the demo: a small trained extractor)
   codeplan extract tiny --input examples/sample.jsonl --output /tmp/plans.jsonl
   codeplan extract --backend openai --base-url http://vllm:8000/v1 --model meta-llama/Meta-Llama-3-8B-Instruct \
       --input part-00.parquet --output plans.jsonl --shard 3/8 --concurrency 64`,
		Flags:  flags,
		Action: runExtract,
	}
}

// testRowHook, set only by this package's tests (in the child process of
// TestMain), is called after each row extract collects, with the count so
// far and the soft context of the run; it lets a test signal the process at
// an exact point instead of racing the run.
var testRowHook func(rows int64, soft context.Context)

// extractBackend is where extract's plans come from. It is chosen and
// checked from the flags before anything is opened; start then loads the
// model or reaches the server, after the input and outputs were checked.
type extractBackend struct {
	// key names the model in the settings the output is keyed on, and
	// seqContext the tokens a sequence will hold (0 = unknown).
	key        pipeline.ModelKey
	seqContext int
	// start returns the generator, fills in cfg.Model and cfg.Workers, and
	// returns what to release after the run.
	start func(cfg *extract.Config) (extract.Generator, func(), error)
	// loaded, for a local backend once started, is its model (the gain
	// scorer's default).
	loaded func() *loaded
	// predict, set for local runs once start has run, times what codeplan
	// bench predicts for the run's token counts (before release).
	predict func(pipeline.Stats) (extract.Prediction, error)
}

// runExtract checks every input (flags, template, model header, input
// file, output files) before it loads a model, then runs the extraction.
func runExtract(c *cli.Context) error {
	cfg, err := extractConfig(c)
	if err != nil {
		return err
	}
	// The summary is written at the end: refuse a device there now.
	if p := c.String("summary"); p != "" {
		if err := dataset.CheckTarget(p); err != nil {
			return fmt.Errorf("--summary: %w", err)
		}
	}
	// Every row is read once before the model loads (as eval loads its
	// whole benchmark): a malformed row on line 2 used to surface only
	// after row 1 had been generated, minutes later on a 1B model.
	if job := cfg.Job(); job.Rows == nil {
		if err := dataset.Validate(job.Input, job.Read); err != nil {
			return err
		}
	}
	var be extractBackend
	switch c.String("backend") {
	case "llama":
		be, err = llamaExtractor(c, cfg.Template)
	case "openai":
		be, err = openaiExtractor(c)
	default:
		return usagef("extract: --backend %q: want llama or openai", c.String("backend"))
	}
	if err != nil {
		return err
	}
	cfg.ModelKey, cfg.SeqContext = be.key, be.seqContext
	scoreGain, err := gainFlags(c, &cfg)
	if err != nil {
		return err
	}
	b, err := pipeline.Open(cfg.Job())
	if err != nil {
		return err
	}
	defer b.Close()
	gen, release, err := be.start(&cfg)
	if err != nil {
		return err
	}
	defer release()
	if local, ok := gen.(extract.Local); ok && local.Engine != nil {
		b.CountTokensLive(func() int64 { return local.Engine.Stats().GeneratedTokens })
	}
	if scoreGain {
		var l *loaded
		if be.loaded != nil {
			l = be.loaded()
		}
		g, closeGain, err := openGainScorer(c, l)
		if err != nil {
			return err
		}
		defer closeGain()
		cfg.Gain = g
	}
	soft, hard, stop := interruptContexts(c.Duration("drain-timeout"))
	defer stop()
	if testRowHook != nil {
		var n int64
		b.Observe(func(pipeline.Outcome) { n++; testRowHook(n, soft) })
	}
	sum, err := extract.RunOn(soft, hard, b, gen, cfg)
	if be.predict != nil && c.Bool("predict") && err == nil && !sum.Interrupted && sum.Processed > 0 {
		log.Info().Msg("timing one batch at the run's token counts (--predict=false to skip)")
		if p, perr := be.predict(sum.Stats); perr != nil {
			log.Warn().Err(perr).Msg("no throughput prediction")
		} else {
			sum.Predicted = &p
		}
	}
	printExtractSummary(stdout, sum, cfg)
	if p := c.String("summary"); p != "" {
		if werr := writeJSON(p, sum); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil && sum.Failed > 0 {
		err = unfinishedRows(sum.Failed, sum.Interrupted)
	}
	if err == nil && sum.Interrupted {
		err = interrupted("extract")
	}
	return err
}

// unfinishedRows is the error of a run whose rows did not all finish:
// failed ones (warned about each), or, after an interruption, rows in
// flight that the second signal or --drain-timeout stopped (not warned
// about: they are not failures). Either way a rerun redoes them.
func unfinishedRows(n int64, interrupted bool) error {
	if interrupted {
		return interruptedRows{n}
	}
	return fmt.Errorf("%d rows failed (see the warnings above); rerun the same command to retry them", n)
}

// interruptedRows is unfinishedRows' error after a signal: it exits
// exitInterrupted like every interrupted command, not as a runtime failure.
type interruptedRows struct{ n int64 }

func (e interruptedRows) Error() string {
	return fmt.Sprintf("interrupted: %d rows did not finish (stopped in flight, or failed as warned above); rerun the same command to redo them", e.n)
}

func (e interruptedRows) Unwrap() error { return interruptedError{"rows"} }

// extractConfig reads the file, template, filter and sampling flags.
func extractConfig(c *cli.Context) (extract.Config, error) {
	input, output := c.String("input"), c.String("output")
	switch {
	case input == "":
		return extract.Config{}, usagef("extract: --input is required")
	case output == "":
		return extract.Config{}, usagef("extract: --output is required")
	case output == "-":
		return extract.Config{}, usagef("extract: --output must be a file: resuming needs to read it back")
	}
	rejects := c.String("rejects")
	if !c.IsSet("rejects") {
		rejects = strings.TrimSuffix(output, filepath.Ext(output)) + ".rejects.jsonl"
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return extract.Config{}, usageError{err}
	}
	tmpl, err := planner.TemplateFromFlag(c.String("template"))
	if err != nil {
		return extract.Config{}, usageError{err}
	}
	minWords, maxWords, err := wordLimits(c)
	if err != nil {
		return extract.Config{}, err
	}
	sampling := samplingFrom(c)
	return extract.Config{SamplingKey: sampling.Key(),
		Input: input, Read: readOptions(c), Output: output, Rejects: rejects, Shard: shard,
		Limit: c.Int64("limit"), Template: tmpl, MaxPlanTokens: c.Int("max-plan-tokens"), ReferenceField: c.String("reference-field"),
		Filter: planner.NewFilter(planner.FilterConfig{MaxWords: maxWords, MinWords: minWords}),
		Logger: log, Progress: true,
		Sampling: map[string]any{"temperature": sampling.Temperature, "top_p": sampling.TopP, "top_k": sampling.TopK, "seed": sampling.Seed, "max_plan_tokens": c.Int("max-plan-tokens")},
	}, nil
}

// llamaExtractor runs a local GGUF model on the continuous-batching engine.
func llamaExtractor(c *cli.Context, tmpl *planner.Template) (extractBackend, error) {
	key, opts, err := modelKey(c)
	if err != nil {
		return extractBackend{}, err
	}
	extra := 0
	if c.Bool("prefix-cache") {
		extra = 1 // the engine's prefix cache takes a sequence
	}
	seqContext, err := opts.SeqContext(extra)
	if err != nil {
		return extractBackend{}, usageError{err}
	}
	sampling := samplingFrom(c)
	var opened *loaded
	var predict func(pipeline.Stats) (extract.Prediction, error) // set by start
	start := func(cfg *extract.Config) (extract.Generator, func(), error) {
		cache := c.Bool("prefix-cache")
		extra := 0
		if cache {
			extra = 1
		}
		l, err := openModelSeqs(c, extra)
		if err != nil {
			return nil, nil, err
		}
		eng, err := l.Engine(engine.Options{Parallel: c.Int("parallel"), PrefixCache: cache, Trace: stepTracer()})
		if err != nil {
			l.Close()
			return nil, nil, err
		}
		release := func() {
			st := eng.Stats()
			l.Close() // the engine, the gain scorer on the model, the model
			log.Info().Int64("prompt_tokens_computed", st.PromptTokens).Int64("prompt_tokens_from_cache", st.CachedTokens).
				Int64("generated_tokens", st.GeneratedTokens).Int64("decode_steps", st.Steps).Int64("busy_ms", st.Busy.Milliseconds()).Msg("engine")
		}
		chat := chatTemplater(l.Model)
		warnContextRoom(l.Model, eng, tmpl, chat, cfg.MaxPlanTokens)
		local := extract.Local{Engine: eng, Chat: chat, Sampling: sampling}
		if cache {
			local.SharedPrefix = extract.SharedPrefix(tmpl, chat)
		}
		cfg.Workers = 2 * eng.Parallel() // keep the queue full while results are written
		// Capacity rejects record what a sequence really held: llama.cpp
		// pads a sequence's share up to a multiple of 256, so --ctx 1800
		// for 3 sequences holds 768, not 600, and a rerun at --ctx 2300
		// (766 planned) must not redo those rows. The planned size (the
		// job's Redo, fixed at Open) is never above the padded one, so a
		// rerun redoes a row exactly when its sequences will hold more.
		cfg.SeqContext = max(cfg.SeqContext, eng.SlotContext())
		cfg.Model = filepath.Base(l.Path)
		opened = l
		predict = func(st pipeline.Stats) (extract.Prediction, error) {
			eng.Close() // the benchmark needs the context to itself (release closes it again: a no-op)
			return extract.Predict(l.Measure, l.Ctx.ContextSize(), eng.Parallel(), st)
		}
		return local, release, nil
	}
	return extractBackend{key: key, seqContext: seqContext, start: start, loaded: func() *loaded { return opened }, predict: func(st pipeline.Stats) (extract.Prediction, error) {
		if predict == nil {
			return extract.Prediction{}, errors.New("the model was not loaded")
		}
		return predict(st)
	}}, nil
}

// stepTracer logs every decode step at debug level (--log-level debug):
// the cells attention spans (n_kv) and, per sequence, its tokens, the
// highest cell it uses and the cells its stream attends over.
func stepTracer() func(engine.StepTrace) {
	if log.GetLevel() > zerolog.DebugLevel {
		return nil
	}
	return func(t engine.StepTrace) {
		var b strings.Builder
		for i, s := range t.Seqs {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d:%d/%d/%d", s.Seq, s.Pos, s.Cells.Highest, s.Cells.Attended)
		}
		log.Debug().Int64("step", t.Step).Int("tokens", t.Tokens).Float64("decode_ms", float64(t.Decode.Microseconds())/1000).
			Int("n_kv", t.NKV).Str("seq:tokens/highest_cell/attended", b.String()).Msg("engine step")
	}
}

// warnContextRoom warns at start when rows of ordinary length could fill
// their sequence's share of the context before the plan limit (they would be
// rejected as context_full).
func warnContextRoom(m *llama.Model, eng *engine.Engine, tmpl *planner.Template, chat planner.ChatTemplater, maxPlan int) {
	if maxPlan <= 0 {
		maxPlan = planner.DefaultExtractPlanTokens
	}
	count := func(s string) (int, error) {
		t, err := m.Tokenize(s, true, true)
		return len(t), err
	}
	fixed, room, err := extract.ContextRoom(tmpl, chat, count, eng.SlotContext(), maxPlan)
	if err != nil || room >= contextRoomWarn {
		return
	}
	msg := fmt.Sprintf("each sequence holds %d tokens; the template takes %d and a plan up to %d (--max-plan-tokens), "+
		"leaving %d for a row's prompt and response: rows longer than that are rejected as context_full when their plan runs long",
		eng.SlotContext(), fixed, maxPlan, max(room, 0))
	// A larger --ctx helps only up to the model's training context; a model
	// trained short (such as the demo's extractor, 1024 tokens, on rows of
	// about 130) cannot be given more room, so there is no advice to act on:
	// say it once at info level, and the summary counts any row it cuts.
	// The slot size at which the room would reach contextRoomWarn, derived
	// from ContextRoom's own answer so that what it keeps free is counted once.
	need := eng.SlotContext() - room + contextRoomWarn
	if trained := m.ContextLength(); trained > 0 && need > trained {
		log.Info().Msgf("%s (this model was trained on %d-token sequences, so a larger --ctx cannot add room)", msg, trained)
		return
	}
	log.Warn().Msgf("%s (--ctx %d gives each sequence room for a %d-token row)", msg, eng.ContextFor(need), contextRoomWarn)
}

// contextRoomWarn is the room for a row's own text below which extract
// warns: about 700 words, four times the paper's mean prompt and response.
const contextRoomWarn = 1024

// openaiExtractor sends the prompts to an OpenAI-compatible server.
func openaiExtractor(c *cli.Context) (extractBackend, error) {
	name := c.String("model")
	if name == "" {
		name = c.Args().First()
	}
	if len(c.StringSlice("base-url")) == 0 || name == "" {
		return extractBackend{}, usagef("extract --backend openai needs --base-url URL and --model NAME")
	}
	client, err := remote.New(remote.Options{BaseURLs: c.StringSlice("base-url"), Model: name, APIKey: c.String("api-key"),
		Timeout: c.Duration("timeout"), MaxRetries: retriesOption(c.Int("retries")), Concurrency: c.Int("concurrency"),
		MaxConnFailures: connFailuresOption(c.Int("max-connection-failures"))})
	if err != nil {
		return extractBackend{}, usageError{err}
	}
	// Every sampling setting and the seed are sent (see extract.NewRemote),
	// so the run is keyed on all of them, as a local run is.
	sampling := samplingFrom(c)
	key := pipeline.ModelKey{Name: name}
	start := func(cfg *extract.Config) (extract.Generator, func(), error) {
		if err := probeFleet(client); err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rg, _, err := extract.NewRemote(ctx, client, sampling)
		if err != nil {
			return nil, nil, err
		}
		if rg.Params.Mode != "" {
			log.Info().Str("mode", rg.Params.Mode).Msg("codeplan serve: asking for plain completions")
		}
		cfg.Workers = c.Int("concurrency")
		cfg.Model = name
		return rg, func() {}, nil
	}
	return extractBackend{key: key, start: start}, nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return dataset.WriteFile(path, append(data, '\n'))
}

func printExtractSummary(w io.Writer, s extract.Summary, cfg extract.Config) {
	fmt.Fprintf(w, "\nextract summary (%s)\n", s.Elapsed.Round(time.Millisecond))
	if s.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: rerun the same command to resume\n")
	}
	fmt.Fprintf(w, "  rows processed    %d  (accepted %d, rejected %d, failed %d)\n", s.Processed, s.Written, s.Rejected, s.Failed)
	if s.Resumed+s.OtherShards+s.Duplicates+s.Skipped > 0 {
		fmt.Fprintf(w, "  rows not sent     already done %d, other shards %d, duplicate ids %d, malformed %d\n", s.Resumed, s.OtherShards, s.Duplicates, s.Skipped)
	}
	if len(s.Reasons) > 0 {
		fmt.Fprintf(w, "  reject reasons\n")
		keys := make([]string, 0, len(s.Reasons))
		for k := range s.Reasons {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return s.Reasons[keys[i]] > s.Reasons[keys[j]] || (s.Reasons[keys[i]] == s.Reasons[keys[j]] && keys[i] < keys[j])
		})
		for _, k := range keys {
			desc := extract.Describe(planner.Reason(k))
			if planner.Reason(k) == extract.ReasonContextFull && s.ContextFullFit > 0 {
				desc += ": " + cutRows{n: int(s.Reasons[k]), fit: s.ContextFullFit}.advice()
			}
			fmt.Fprintf(w, "    %-22s %6d  %s\n", k, s.Reasons[k], desc)
		}
	}
	if s.ReferenceRows > 0 {
		fmt.Fprintf(w, "  reference plans   %d of %d rows (%.1f%%) accepted with exactly the reference plan (--reference-field %s)\n",
			s.ReferenceMatches, s.ReferenceRows, 100*float64(s.ReferenceMatches)/float64(s.ReferenceRows), cfg.ReferenceField)
	}
	if s.Written > 0 {
		fmt.Fprintf(w, "  mean words        prompt %.1f, plan %.1f, response %.1f  (paper: %.1f / %.1f / %.1f)\n",
			s.PromptWords, s.PlanWords, s.ResponseWord, paperPromptWords, paperPlanWords, paperResponseWords)
	}
	for _, g := range []struct {
		name string
		s    *extract.GainStats
	}{{"accepted", s.GainAccepted}, {"all scored", s.GainAll}} {
		if g.s != nil && g.s.Rows > 0 {
			fmt.Fprintf(w, "  gain (nats/token) %-10s mean %+.4f  q1 %+.4f  median %+.4f  q3 %+.4f  (%d rows)\n",
				g.name, g.s.Mean, g.s.Q1, g.s.Median, g.s.Q3, g.s.Rows)
		}
	}
	fmt.Fprintf(w, "  throughput        %.2f rows/s, %.1f generated tok/s (%d prompt + %d generated tokens)\n",
		s.RowsPerSecond(), s.TokensPerSecond(), s.PromptTok, s.Tokens)
	if p := s.Predicted; p != nil {
		fmt.Fprintf(w, "  bench predicts    %.2f rows/s at --parallel %d, --ctx %d for %d prompt + %d generated tokens a row (%.0f / %.0f tok/s); achieved %.2fx\n",
			p.RowsPerSecond, p.Parallel, p.Context, p.PromptTokens, p.GenTokens, p.PromptTokPerSec, p.GenTokPerSec, p.AchievedPerPredicted)
	}
	fmt.Fprintf(w, "  output            %s\n", cfg.Output)
	if cfg.Rejects != "" {
		fmt.Fprintf(w, "  rejects           %s\n", cfg.Rejects)
	}
}

// retriesOption maps --retries to remote.Options.MaxRetries, where 0 means
// "default" and a negative value means "none".
func retriesOption(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// wordLimits reads --min-words and --max-words as planner.FilterConfig
// wants them: 0 or -1 on the command line turns a check off, which the
// filter spells -1 (its 0 means "the default", which the command line's 0
// used to give silently). A minimum above the maximum would reject every
// plan, so it is refused.
func wordLimits(c *cli.Context) (minWords, maxWords int, err error) {
	get := func(name string) (int, error) {
		v := c.Int(name)
		switch {
		case v < -1:
			return 0, usagef("extract: --%s %d: want a number of words, or 0 for no limit", name, v)
		case v <= 0:
			return -1, nil
		}
		return v, nil
	}
	if minWords, err = get("min-words"); err != nil {
		return 0, 0, err
	}
	if maxWords, err = get("max-words"); err != nil {
		return 0, 0, err
	}
	if minWords > 0 && maxWords > 0 && minWords > maxWords {
		return 0, 0, usagef("extract: --min-words %d is more than --max-words %d: every plan would be rejected", minWords, maxWords)
	}
	return minWords, maxWords, nil
}

// gainFlags reads --score-gain, --score-model and --min-gain into cfg and
// its settings key (rows with gains, or filtered by gain, are not mixed with
// rows without on resume), checking the scoring model's file before any
// model loads. It reports whether gains are scored.
func gainFlags(c *cli.Context, cfg *extract.Config) (bool, error) {
	score := c.Bool("score-gain") || c.IsSet("min-gain") || c.IsSet("score-model")
	if !score {
		return false, nil
	}
	scorer := "extraction model"
	if p := c.String("score-model"); p != "" {
		scorer = p
		if p != tinyModelName {
			if err := llama.CheckGGUF(p); err != nil {
				return false, usagef("extract: --score-model: %v", err)
			}
			scorer = filepath.Base(p)
		}
	} else if c.String("backend") == "openai" {
		return false, usagef("extract: --score-gain with --backend openai needs --score-model PATH (a local model that scores the plans)")
	}
	cfg.GainModel = scorer
	if c.IsSet("min-gain") {
		v := c.Float64("min-gain")
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false, usagef("extract: --min-gain %v: want a finite number of nats per token", v)
		}
		cfg.MinGain = &v
	}
	return true, nil
}

// openGainScorer makes the plan-gain scorer (local.Model.GainScorer): on
// --score-model, loaded with the shared model flags, or else on the
// extraction model and its --lora adapter.
func openGainScorer(c *cli.Context, l *loaded) (extract.GainScorer, func(), error) {
	var score local.Options
	if p := c.String("score-model"); p != "" {
		if p == tinyModelName {
			var err error
			if p, err = tiny.DefaultPath(); err != nil {
				return nil, nil, err
			}
		}
		o, err := localOptions(c)
		if err != nil {
			return nil, nil, err
		}
		score = o
		score.Path = p
	}
	var (
		g   extract.GainScorer
		err error
	)
	release := func() {}
	if l != nil {
		g, err = l.GainScorer(score)
	} else {
		var holder *local.Model
		if g, holder, err = local.GainScorerOn(score, log); err == nil {
			release = func() { holder.Close() }
		}
	}
	var fe *local.FileError
	if errors.As(err, &fe) {
		return nil, nil, usageError{err}
	}
	return g, release, err
}
