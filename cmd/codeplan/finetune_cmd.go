package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
)

func finetuneCommand() *cli.Command {
	return &cli.Command{
		Name:      "finetune",
		Usage:     "train a LoRA adapter (or, with --full, every weight) on (prompt, plan, response) rows",
		ArgsUsage: "MODEL.gguf",
		Description: `Every row of --input (the JSONL that 'codeplan extract' writes: id, prompt, plan,
response) becomes one training sequence in the trained format: the conversation
up to the assistant header is context, and only the assistant turn ("Plan:",
the plan in a python fence, "Response:", the response, the end-of-turn marker) is
scored by the loss. The base model stays frozen; only the adapter's A and B
matrices are trained (AdamW, warm-up then cosine/linear/constant decay,
gradient clipping). A share of the rows (--val-split) is held out to report an
unbiased loss.

Next to --output it writes OUT.log.csv (one row per optimizer step) and
OUT.loss.png. Ctrl-C finishes the current step and saves OUT.ckpt.gguf
(adapter, AdamW moments, step); rerun the same command with --resume to
continue exactly as if never stopped. --checkpoint-every N also saves every N
steps.

--lora PATH continues training that adapter (as --lora PATH names an adapter
in every other command): its values are the start, its rank, alpha and
targets are kept, AdamW and the schedule start afresh; --output must be
another file. Without a path, a new adapter is trained (the default).

--full trains every weight instead (F32 master weights, AdamW with weight
decay on matrices only; everything else as above) and writes the whole model
to --output, e.g. to train a model made by 'codeplan model init' from scratch.
It needs an all-F32 model and three more copies of it in memory (gradients
and two moments); the checkpoint holds all three.

Supported bases: llama, qwen2 and qwen3 architectures (dense). Weights may be
F32, F16, BF16 or quantized (Q4_0, Q8_0, K-quants, ...); on the CPU, F16/BF16
matrices get a one-time F32 copy (2x their memory), quantized ones are used as
they are. On a GPU (--gpu) every non-F32 matrix gets an F32 copy on the device.
--merge needs an F32/F16/BF16 base.

--task extract trains a plan extractor instead: each row's prompt and response
are put into the extraction template (--template, as in 'codeplan extract') and
the row's plan is the target, so a small model learns to do what 'codeplan
extract' asks of a large one (e.g. distil the plans a large model extracted).
It trains in direct mode; use the result as the MODEL of 'codeplan extract'.

Examples:
   codeplan finetune Qwen2.5-1.5B-Instruct-f16.gguf --input plans.jsonl --output codeplan-lora.gguf --gpu
   codeplan finetune tiny --input plans.jsonl --output /tmp/a.gguf --epochs 3 --lr 1e-3
   codeplan finetune model.gguf --input plans.jsonl --output a.gguf --resume
   codeplan finetune model.gguf --lora a.gguf --input more.jsonl --output a2.gguf
   codeplan model init --output init.gguf --layers 4 --embd 256 --heads 4 --ff 768
   codeplan finetune init.gguf --full --input rows.jsonl --output trained.gguf --epochs 4 --lr 1e-3 --weight-decay 0.1
   codeplan finetune init.gguf --full --task extract --input plans.jsonl --output extractor.gguf --ctx 1536 --batch 1536`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base model GGUF `PATH` (or the first argument; \"tiny\" = built-in test model)"},
			&cli.StringFlag{Name: "input", Aliases: []string{"data", "i"}, Usage: "training rows, JSONL (or Parquet) `PATH` with prompt, plan and response fields"},
			&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "adapter GGUF `PATH` to write (with --full: the trained model)"},
			&cli.StringFlag{Name: "lora", Usage: "continue training the LoRA adapter at `PATH` (its rank, alpha and targets; fresh AdamW state and schedule) and write the result to --output; without a path (or =true) train a new adapter, the default"},
			&cli.BoolFlag{Name: "full", Usage: "train every weight of an F32 model (e.g. from 'codeplan model init') and write the whole model to --output"},
			&cli.IntFlag{Name: "lora-rank", Value: 8, Usage: "LoRA rank `R`"},
			&cli.Float64Flag{Name: "lora-alpha", Value: 16, Usage: "LoRA alpha; the update is scaled by alpha/rank"},
			&cli.StringFlag{Name: "lora-targets", Value: "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down", Usage: "matrices to adapt, comma-separated"},
			&cli.IntFlag{Name: "epochs", Value: 2, Usage: "passes over the training rows"},
			&cli.Float64Flag{Name: "lr", Value: 1e-4, Usage: "peak learning rate"},
			&cli.Float64Flag{Name: "warmup", Value: 0.05, Usage: "warm-up: a fraction of all steps (< 1) or a number of steps"},
			&cli.StringFlag{Name: "schedule", Value: "cosine", Usage: "learning-rate decay after warm-up: cosine, linear or constant"},
			&cli.IntFlag{Name: "ctx", Value: 512, Usage: "most tokens per row; longer rows are truncated (with a warning naming the row)"},
			&cli.IntFlag{Name: "batch", Value: 512, Usage: "tokens per forward/backward pass (rows are packed; must be >= --ctx)"},
			&cli.IntFlag{Name: "grad-accum", Value: 1, Usage: "forward/backward passes per optimizer step"},
			&cli.Float64Flag{Name: "val-split", Value: 0.05, Usage: "share of rows held out for the evaluation loss"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of the adapter initialisation and the data order"},
			&cli.Float64Flag{Name: "max-grad-norm", Value: 1, Usage: "clip the gradient to this L2 norm (0 = off)"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "AdamW decoupled weight decay"},
			&cli.IntFlag{Name: "eval-every", Usage: "evaluate on the held-out rows every `N` steps (0 = ten times per run)"},
			&cli.IntFlag{Name: "checkpoint-every", Usage: "save a checkpoint every `N` optimizer steps (0 = only on Ctrl-C)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from the checkpoint next to --output"},
			&cli.IntFlag{Name: "snapshots", Usage: "with --full, also write the model after each 1/`N` of the steps to OUTPUT.at<percent>.gguf (learning curves)"},
			&cli.StringFlag{Name: "merge", Usage: "also write the base with the adapter merged in to `PATH` (F32/F16/BF16 bases)"},
			&cli.StringFlag{Name: "mode", Value: "codeplan", Usage: "what the model learns to write before the answer: codeplan, nlplan or direct"},
			&cli.StringFlag{Name: "format", Value: "trained", Usage: "prompt format: trained or prompted"},
			&cli.StringFlag{Name: "task", Value: "answer", Usage: "answer (learn to plan and answer prompts) or extract (learn to write a row's plan from the extraction prompt; direct mode)"},
			&cli.StringFlag{Name: "template", Usage: "with --task extract: the extraction prompt: paper (default), structured, or a `FILE` with {{prompt}} and {{response}}"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "CPU threads"},
			&cli.BoolFlag{Name: "gpu", Usage: "offload all layers to the GPU backend (needs make cuda, or Metal)"},
			&cli.IntFlag{Name: "ngl", Usage: "offload `N` layers to the GPU backend"},
			&cli.StringFlag{Name: "backend-dir", EnvVars: []string{"CODEPLAN_BACKEND_DIR"}, Usage: "folder with GPU backend libraries"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the memory one training step needs (weights, F32 copies, adapter, gradients and AdamW moments, activations at --batch) and stop; reads only the model's shapes, so it is quick at any size; with --gpu/--ngl, as the GPU would need it"},
		}, trainingRowFlags()...),
		Action: runFinetune,
	}
}

// finetuneConfig turns the flags into a finetune.Config; every error is a
// usage error.
func finetuneConfig(c *cli.Context) (finetune.Config, error) {
	var cfg finetune.Config
	full := c.Bool("full")
	// --lora PATH continues an adapter, as --lora PATH names an adapter in
	// every other command; a bare --lora (or =true) is the old on/off
	// switch for "train a new adapter", which interspersed spells --lora=true.
	lora, from := strings.TrimSpace(c.String("lora")), ""
	switch strings.ToLower(lora) {
	case "", "true":
	case "false":
		if !full {
			return cfg, fmt.Errorf("finetune: --lora=false needs --full (train every weight instead of an adapter)")
		}
	default:
		from = lora
	}
	if full && c.IsSet("lora") && strings.ToLower(lora) != "false" {
		return cfg, fmt.Errorf("finetune: --full and --lora exclude each other")
	}
	if from != "" {
		for _, name := range []string{"lora-rank", "lora-alpha", "lora-targets"} {
			if c.IsSet(name) {
				return cfg, fmt.Errorf("finetune: --%s does not apply with --lora %s: training continues with that adapter's rank, alpha and targets", name, from)
			}
		}
	}
	if full {
		for _, name := range []string{"lora-rank", "lora-alpha", "lora-targets", "merge"} {
			if c.IsSet(name) {
				return cfg, fmt.Errorf("finetune: --%s applies to LoRA training, not --full", name)
			}
		}
	}
	if c.String("input") == "" {
		return cfg, fmt.Errorf("finetune: --input is required")
	}
	if c.String("output") == "" {
		return cfg, fmt.Errorf("finetune: --output is required")
	}
	targets, err := finetune.ParseTargets(c.String("lora-targets"))
	if err != nil {
		return cfg, fmt.Errorf("--lora-targets: %w", err)
	}
	sched, err := finetune.ParseSchedule(c.String("schedule"))
	if err != nil {
		return cfg, fmt.Errorf("--schedule: %w", err)
	}
	mode, err := planner.ParseMode(c.String("mode"))
	if err != nil {
		return cfg, fmt.Errorf("--mode: %w", err)
	}
	format, err := planner.ParseFormat(c.String("format"))
	if err != nil {
		return cfg, fmt.Errorf("--format: %w", err)
	}
	var extraction *planner.Template
	switch c.String("task") {
	case "answer":
		if c.IsSet("template") {
			return cfg, fmt.Errorf("--template applies to --task extract")
		}
	case "extract":
		if c.IsSet("mode") && mode != planner.Direct {
			return cfg, fmt.Errorf("--task extract trains in direct mode (the plan is the whole target), not --mode %s", mode)
		}
		mode = planner.Direct
		if extraction, err = planner.TemplateFromFlag(c.String("template")); err != nil {
			return cfg, fmt.Errorf("--template: %w", err)
		}
	default:
		return cfg, fmt.Errorf("--task %q, want answer or extract", c.String("task"))
	}
	// Explicit zeros mean "off" here, while finetune.Config treats zero as
	// "default"; a tiny negative value carries "off" through.
	maxNorm := c.Float64("max-grad-norm")
	if maxNorm == 0 {
		maxNorm = -1
	}
	valSplit := c.Float64("val-split")
	cfg = finetune.Config{
		Data: c.String("input"), Out: c.String("output"), PlanField: c.String("plan-field"),
		Read: trainingReadOptions(c),
		Rank: c.Int("lora-rank"), Alpha: c.Float64("lora-alpha"), Targets: targets,
		Epochs: c.Int("epochs"), LR: c.Float64("lr"), Warmup: c.Float64("warmup"), Schedule: sched,
		Ctx: c.Int("ctx"), Batch: c.Int("batch"), GradAccum: c.Int("grad-accum"), ValSplit: valSplit,
		Seed: c.Uint64("seed"), MaxGradNorm: maxNorm, WeightDecay: c.Float64("weight-decay"), Threads: c.Int("threads"),
		EvalEvery: c.Int("eval-every"), CheckpointEvery: c.Int("checkpoint-every"), Snapshots: c.Int("snapshots"), Resume: c.Bool("resume"),
		Merge: c.String("merge"), Mode: mode, Format: format, System: c.String("system"), Full: full,
		Extraction: extraction, Logger: log, Progress: true, From: from,
	}
	if from != "" {
		cfg.Rank, cfg.Alpha, cfg.Targets = 0, 0, nil // the adapter's own
	}
	for _, name := range []string{"lora-rank", "epochs", "ctx", "batch", "grad-accum", "lr", "lora-alpha", "seed"} {
		if c.IsSet(name) && isZeroFlag(c, name) {
			return cfg, fmt.Errorf("--%s must not be 0", name)
		}
	}
	return cfg, nil
}

func isZeroFlag(c *cli.Context, name string) bool {
	switch name {
	case "lr", "lora-alpha":
		return c.Float64(name) == 0
	case "seed":
		return c.Uint64(name) == 0
	}
	return c.Int(name) == 0
}

func runFinetune(c *cli.Context) error {
	cfg, err := finetuneConfig(c)
	if err != nil {
		return usageError{err}
	}
	path, err := modelPath(c)
	if err != nil {
		return err
	}
	// Everything that can be checked without loading the weights is checked
	// first: loading an 8B model takes a while.
	base, err := finetune.InspectBase(path)
	if err != nil {
		return usageError{err}
	}
	if err := finetune.Preflight(cfg, base); err != nil {
		return usageError{finetuneMessage(err, cfg)}
	}
	if c.Bool("dry-run") {
		return printMemoryPlan(c, cfg, base)
	}
	// The run's outputs (adapter or model, its checkpoint, log and plot,
	// the merged model) are held under the output lock of --output and
	// --merge until the run ends: a second finetune onto the same --output
	// would overwrite the first one's checkpoint.
	for _, o := range []struct{ flag, path string }{{"output", cfg.Out}, {"merge", cfg.Merge}} {
		if o.path == "" {
			continue
		}
		lock, err := lockOutputFlag(o.flag, o.path)
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	ngl := c.Int("ngl")
	if c.Bool("gpu") {
		ngl = -1
	}
	if ngl != 0 {
		if err := loadGPUBackends(c.String("backend-dir")); err != nil {
			return err
		}
		if err := checkModelFitsGPU(path, ngl); err != nil {
			return err
		}
	}
	start := time.Now()
	// Full training updates the weights in place: they must be in memory,
	// not mapped read-only from the file.
	m, err := llama.LoadModel(path, llama.ModelOptions{GPULayers: ngl, NoMmap: cfg.Full})
	if err != nil {
		return usageError{err}
	}
	defer m.Close()
	log.Info().Str("model", base.FileName()).Str("arch", base.Architecture).Int("gpu_layers", ngl).
		Int64("load_ms", time.Since(start).Milliseconds()).Msg("model ready")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handleSignals()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		for n := 1; ; n++ {
			if _, ok := <-sig; !ok {
				return
			}
			if n == 1 {
				log.Warn().Msg("interrupted: finishing the current step, then saving a checkpoint (Ctrl-C again to quit at once)")
				cancel()
				continue
			}
			// Checkpoints are written atomically, so quitting now leaves
			// the last one intact.
			log.Warn().Msg("quitting without saving; --resume continues from the last checkpoint, if any")
			os.Exit(exitInterrupted)
		}
	}()
	res, err := finetune.Run(ctx, m, cfg)
	if err != nil {
		if isFinetuneUsage(err) {
			return usageError{finetuneMessage(err, cfg)}
		}
		return finetuneMessage(err, cfg)
	}
	if cfg.Full {
		fmt.Fprintf(c.App.Writer, "model      %s (%d trained values, every weight)\n", res.Model, res.Params)
	} else {
		fmt.Fprintf(c.App.Writer, "adapter    %s (%d trainable values, rank %d)\n", res.Adapter, res.Params, cfg.Rank)
	}
	fmt.Fprintf(c.App.Writer, "steps      %d over %d training rows (%d held out)\n", res.Steps, res.TrainRows, res.EvalRows)
	fmt.Fprintf(c.App.Writer, "loss       %.4f -> %.4f (first and last step)\n", res.FirstLoss, res.FinalLoss)
	if !math.IsNaN(res.EvalLoss) {
		fmt.Fprintf(c.App.Writer, "held-out   %.4f -> %.4f\n", res.EvalLoss0, res.EvalLoss)
	}
	fmt.Fprintf(c.App.Writer, "speed      %.0f tokens/s\n", res.TokensPS)
	fmt.Fprintf(c.App.Writer, "log        %s\n", res.Log)
	if res.Plot != "" {
		fmt.Fprintf(c.App.Writer, "plot       %s\n", res.Plot)
	}
	if res.Merged != "" {
		fmt.Fprintf(c.App.Writer, "merged     %s\n", res.Merged)
	}
	return nil
}

// finetuneFlags names the flag that sets each finetune.Config field, so
// that a *finetune.ConfigError reads in the command's terms.
var finetuneFlags = map[string]string{
	"Data": "input", "Out": "output", "Merge": "merge", "Full": "full", "PlanField": "plan-field",
	"Rank": "lora-rank", "Alpha": "lora-alpha", "Targets": "lora-targets",
	"Epochs": "epochs", "LR": "lr", "Warmup": "warmup", "Schedule": "schedule", "Ctx": "ctx", "Batch": "batch",
	"GradAccum": "grad-accum", "ValSplit": "val-split", "Seed": "seed", "MaxGradNorm": "max-grad-norm",
	"WeightDecay": "weight-decay", "Threads": "threads", "CheckpointEvery": "checkpoint-every", "Snapshots": "snapshots", "EvalEvery": "eval-every",
	"Resume": "resume", "From": "lora", "Mode": "mode", "Format": "format", "System": "system", "Extraction": "template",
}

// finetuneMessage says a finetune error in the command's terms: the flag at
// fault, and what to do about a checkpoint, a diverged run or an
// interrupted one. errors.Is and errors.As still see the library's error.
func finetuneMessage(err error, cfg finetune.Config) error {
	var ce *finetune.ConfigError
	switch {
	case errors.As(err, &ce) && ce.Field == "Batch" && cfg.Batch < cfg.Ctx:
		// the one setting refused for another one's sake: name both flags
		return reworded{fmt.Sprintf("--batch %d is smaller than --ctx %d: a batch must hold the longest row", cfg.Batch, cfg.Ctx), err}
	case errors.As(err, &ce):
		name := ce.Field
		if flag, ok := finetuneFlags[ce.Field]; ok {
			name = "--" + flag
		}
		return reworded{ce.Message(name), err}
	case errors.Is(err, finetune.ErrCheckpointExists):
		return fmt.Errorf("%w: pass --resume to continue it, or delete it to start over", err)
	case errors.Is(err, finetune.ErrNothingToResume):
		return fmt.Errorf("--resume: %w; delete %s to train again, or choose another --output", err, cfg.Out)
	case errors.Is(err, finetune.ErrNoCheckpoint):
		return fmt.Errorf("--resume: %w: start the run without --resume", err)
	case errors.Is(err, finetune.ErrCheckpoint):
		return fmt.Errorf("%w; resume with the model, --input and flags of the run that wrote it, or delete %s to start over", err, cfg.CheckpointPath())
	case errors.Is(err, finetune.ErrDiverged):
		return fmt.Errorf("%w; lower --lr", err)
	case errors.Is(err, finetune.ErrInterrupted):
		return interruptedFinetune{err}
	}
	return err
}

// interruptedFinetune is a finetune stopped by a signal: exit
// exitInterrupted, with --resume as the way on.
type interruptedFinetune struct{ err error }

func (e interruptedFinetune) Error() string { return e.err.Error() + " (rerun with --resume)" }
func (e interruptedFinetune) Unwrap() []error {
	return []error{e.err, interruptedError{"finetune"}}
}

// isFinetuneUsage reports whether a finetune.Run error is the input's
// fault (exit 2): a setting, no usable rows, or a checkpoint that does not
// fit the command.
func isFinetuneUsage(err error) bool {
	var ce *finetune.ConfigError
	return errors.As(err, &ce) || errors.Is(err, finetune.ErrNoRows) || errors.Is(err, finetune.ErrCheckpoint) ||
		errors.Is(err, finetune.ErrCheckpointExists) || errors.Is(err, finetune.ErrNoCheckpoint) || errors.Is(err, finetune.ErrNothingToResume)
}

// reworded is err with another text.
type reworded struct {
	text string
	err  error
}

func (r reworded) Error() string { return r.text }
func (r reworded) Unwrap() error { return r.err }

// printMemoryPlan is finetune --dry-run: the memory plan of one step, on
// stdout.
func printMemoryPlan(c *cli.Context, cfg finetune.Config, base *finetune.Base) error {
	gpu := c.Bool("gpu") || c.Int("ngl") != 0
	if err := cfg.Validate(); err != nil {
		return err
	}
	// Shapes only: an 8B plan takes seconds on any machine.
	m, err := llama.LoadModel(base.Path, llama.ModelOptions{NoAlloc: true})
	if err != nil {
		return fmt.Errorf("plan memory: %w", err)
	}
	defer m.Close()
	plan, err := finetune.PlanMemory(m, cfg, base, gpu)
	if err != nil {
		return err
	}
	where := "on the CPU"
	if gpu {
		where = "on a CUDA GPU (F32 operands for its OUT_PROD: per-step conversions, or copies for types it cannot convert)"
	}
	what := fmt.Sprintf("LoRA rank %d on %s", cfg.Rank, strings.Join(cfg.Targets, ","))
	if cfg.Full {
		what = "full training"
	}
	w := c.App.Writer
	fmt.Fprintf(w, "memory for one training step of %s: %s, --batch %d, %s\n", base.FileName(), what, cfg.Batch, where)
	for _, row := range []struct {
		name string
		n    int64
	}{
		{"weights", plan.Weights}, {"F32 copies of base weights", plan.Upcast}, {"adapter", plan.Adapter},
		{"gradients and AdamW moments", plan.State}, {"compute buffers (activations, gradients)", plan.Compute},
		{"total", plan.Total()},
	} {
		if _, err := fmt.Fprintf(w, "  %-42s %10.2f GiB\n", row.name, float64(row.n)/(1<<30)); err != nil {
			return err
		}
	}
	return nil
}

// trainingRowFlags are the flags that say how a training row is read and
// rendered, shared by finetune and export so that both read a file alike.
func trainingRowFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "system", Usage: "system message put before every row"},
		&cli.StringFlag{Name: "prompt-field", Usage: "gjson `PATH` of the prompt (default: auto-detect)"},
		&cli.StringFlag{Name: "response-field", Usage: "gjson `PATH` of the response (default: auto-detect)"},
		&cli.StringFlag{Name: "plan-field", Usage: "gjson `PATH` of the plan (default: plan; in nlplan mode nl_plan where a row has it)"},
		&cli.StringFlag{Name: "id-field", Usage: "gjson `PATH` of a row id (default: \"id\", else a hash)"},
		&cli.BoolFlag{Name: "skip-bad", Usage: "count and skip malformed rows instead of stopping at the first"},
	}
}

// trainingReadOptions reads trainingRowFlags' field flags.
func trainingReadOptions(c *cli.Context) dataset.ReadOptions {
	return dataset.ReadOptions{PromptField: c.String("prompt-field"), ResponseField: c.String("response-field"),
		IDField: c.String("id-field"), SkipBad: c.Bool("skip-bad")}
}
