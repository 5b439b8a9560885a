package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/internal/progress"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/message"
	"github.com/codeplan-dev/codeplan/planner"
)

// AdamW constants; only the learning rate and weight decay are flags.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// Result summarises a run.
type Result struct {
	Adapter    string // the adapter written (empty when interrupted or Full)
	Model      string // the whole trained model, with Config.Full
	Log        string // CSV with one row per step
	Plot       string // loss curve PNG ("" if it could not be drawn)
	Merged     string // merged model, when Config.Merge was set
	Checkpoint string // checkpoint written when interrupted

	Data      DataStats
	TrainRows int
	EvalRows  int
	Steps     int     // optimizer steps of the whole run
	StepsDone int     // steps finished (Steps unless interrupted)
	Params    int     // trainable values
	Tokens    int64   // tokens processed in training (all runs of a resumed job)
	UpcastMB  float64 // F32 copies of base weights
	StateMB   float64 // gradients and AdamW moments of the trained values
	ComputeMB float64 // peak compute buffers (activations) of one pass
	FirstLoss float64 // training loss of the first step of this process
	FinalLoss float64 // training loss of the last step
	EvalLoss0 float64 // held-out loss before training (NaN if none)
	EvalLoss  float64 // held-out loss after the last step (NaN if none)
	TokensPS  float64 // training tokens per second
	StartedAt int     // step the run resumed after (0 for a fresh run)
}

// Model is the loaded base model a run trains on: its file, tokenizer and
// chat template, and the trainers it opens (lm.Trainer). *llama.Model
// implements it; finetune itself does not link llama.cpp.
type Model interface {
	Path() string
	Tokenizer
	ApplyTemplate(msgs []message.Message, addAssistant bool) (string, error)
	// OpenTrainer opens the trainer of the LoRA adapter in the file
	// adapterPath, or of every weight when adapterPath is "".
	OpenTrainer(adapterPath string, opts lm.TrainerOptions) (lm.Trainer, error)
}

// Run fine-tunes a LoRA adapter for m on cfg.Data and writes it to cfg.Out
// (with cfg.Full: trains every weight and writes the model). Every check
// that can fail on the inputs (settings, architecture, weight types, data
// without usable rows, a checkpoint from another base or with other
// settings) runs before the first training step: a bad setting is a
// *ConfigError, the checkpoint conditions are ErrCheckpointExists,
// ErrNoCheckpoint, ErrNothingToResume and ErrCheckpoint, data without
// usable rows is ErrNoRows. A non-finite gradient stops the run with a
// *DivergedError; a cancelled ctx stops it after the step in progress,
// with a checkpoint and an *InterruptedError.
func Run(ctx context.Context, m Model, cfg Config) (*Result, error) {
	base, err := InspectBase(m.Path())
	if err != nil {
		return nil, err
	}
	// The adapter being continued sets rank, alpha and targets before the
	// defaults would.
	if cfg, err = cfg.withFrom(base); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := checkStart(cfg, base); err != nil {
		return nil, err
	}
	res := &Result{Log: cfg.LogPath(), EvalLoss0: math.NaN(), EvalLoss: math.NaN(), FirstLoss: math.NaN(), FinalLoss: math.NaN()}
	j, err := prepare(m, cfg, base, res)
	if err != nil {
		return res, err
	}
	r, err := buildTrainer(m, j, res)
	if err != nil {
		return res, err
	}
	defer r.close()
	if err := r.train(ctx, res); err != nil {
		return res, err
	}
	return res, r.finish(m, res)
}

// job is a run laid out before any trainer exists: the rows, every
// optimizer step, and the checkpoint it resumes from.
type job struct {
	cfg         Config
	base        *Base
	examples    []Example
	steps       []step
	evalBatches []microBatch // the held-out rows
	evalEvery   int          // steps between held-out losses
	warmup      int          // warm-up steps
	set         settings     // what a resumed run must share with this one
	ck          *checkpoint  // nil for a fresh run
}

// prepare reads and tokenizes the rows, splits off the held-out ones, lays
// out every step and, when resuming, loads the checkpoint and checks that
// it was made by this run.
func prepare(m Model, cfg Config, base *Base, res *Result) (*job, error) {
	logger := cfg.Logger
	examples, stats, err := LoadExamples(cfg.Data, DataOptions{
		Read: cfg.Read, PlanField: cfg.PlanField, Tokenizer: m, Ctx: cfg.Ctx, Extraction: cfg.Extraction,
		Prompter: planner.Prompter{Mode: cfg.Mode, Format: cfg.Format, Chat: chatTemplate(m, cfg), System: cfg.System},
		Warn:     firstWarnings(logger, 20, "more rows were truncated or skipped; see the totals below"),
	})
	res.Data = stats
	if err != nil {
		return nil, err
	}
	train, val := splitValidation(examples, cfg.ValSplit, cfg.Seed)
	res.TrainRows, res.EvalRows = len(train), len(val)
	j := &job{cfg: cfg, base: base, examples: examples, set: runSettings(cfg, examples),
		steps: planSteps(examples, train, cfg.Epochs, cfg.Seed, cfg.Batch, cfg.GradAccum), evalBatches: pack(examples, val, cfg.Batch)}
	res.Steps = len(j.steps)
	j.evalEvery = cfg.EvalEvery
	if j.evalEvery == 0 {
		j.evalEvery = max(1, len(j.steps)/10)
	}
	j.warmup = warmupSteps(cfg.Warmup, len(j.steps))
	logger.Info().Int("rows", stats.Rows).Int("used", stats.Used).Int("train", len(train)).Int("held_out", len(val)).
		Int("truncated", stats.Truncated).Int("skipped", stats.Skipped).Int64("tokens", stats.Tokens).
		Int64("scored_tokens", stats.ScoredTokens).Int("steps", len(j.steps)).Msg("training data")
	if stats.Skipped > 0 {
		logger.Warn().Msg(stats.skipSummary())
	}
	if !cfg.Resume {
		return j, nil
	}
	// checkStart found the checkpoint; now that the data's hash is known
	// it can be checked to belong to this very run.
	path := cfg.CheckpointPath()
	if j.ck, err = loadCheckpoint(path); err != nil {
		return nil, err
	}
	if err := j.ck.check(path, base, j.set); err != nil {
		return nil, err
	}
	if j.ck.step > len(j.steps) {
		return nil, fmt.Errorf("%s: checkpoint is at step %d, but the run has only %d steps", path, j.ck.step, len(j.steps))
	}
	return j, nil
}

// chatTemplate is cfg.Chat, else the model's own template, else ChatML.
func chatTemplate(m Model, cfg Config) planner.ChatTemplater {
	if cfg.Chat != nil {
		return cfg.Chat
	}
	chat, native := message.Native(m)
	if !native {
		cfg.Logger.Warn().Msg("llama.cpp does not support this model's chat template; training with ChatML")
	}
	return chat
}

// firstWarnings logs the first n warnings and then, once, more.
func firstWarnings(logger zerolog.Logger, n int, more string) func(string) {
	warned := 0
	return func(msg string) {
		warned++
		if warned <= n {
			logger.Warn().Msg(msg)
		} else if warned == n+1 {
			logger.Warn().Msg(more)
		}
	}
}

// runSettings are cfg's settings that a resumed run must share, with a
// hash of the tokenized rows standing for the data.
func runSettings(cfg Config, examples []Example) settings {
	sys := sha256.Sum256([]byte(cfg.System))
	return settings{
		data: dataHash(examples), rank: cfg.Rank, alpha: cfg.Alpha, targets: cfg.Targets, epochs: cfg.Epochs,
		lr: cfg.LR, warmup: cfg.Warmup, schedule: cfg.Schedule, ctx: cfg.Ctx, batch: cfg.Batch, gradAccum: cfg.GradAccum,
		valSplit: cfg.ValSplit, seed: cfg.Seed, maxGradNorm: cfg.MaxGradNorm, weightDecay: cfg.WeightDecay,
		mode: string(cfg.Mode), format: string(cfg.Format), systemHash: hex.EncodeToString(sys[:8]), full: cfg.Full,
		from: fileHash(cfg.From),
	}
}

// fileHash is a short content hash of the file at path ("" for no path or
// an unreadable file, which withFrom has refused already).
func fileHash(path string) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// run is a job being trained: the trainer and what the step loop carries
// from step to step (and into a checkpoint).
type run struct {
	*job
	tr           lm.Trainer
	closeTrainer func()
	meta         adapterMeta
	log          *stepLog
	bar          *progress.Reporter // nil without Config.Progress
	start        int                // the step resumed after (0 for a fresh run)
	tokens       int64              // trained on so far, resumed runs included
	seconds      float64            // spent in training steps so far
	batch        lm.TrainBatch      // reused by every pass
}

// buildTrainer makes the trainer j asks for (LoRA or full), restores the
// checkpoint into it when resuming, and opens the step log.
func buildTrainer(m Model, j *job, res *Result) (*run, error) {
	cfg, logger := j.cfg, j.cfg.Logger
	r := &run{job: j, meta: adapterMeta{base: j.base, alpha: float32(cfg.Alpha), rank: cfg.Rank, targets: cfg.Targets}}
	var err error
	if r.tr, r.closeTrainer, err = newTrainer(m, cfg, j.base, r.meta, lm.TrainerOptions{Threads: cfg.Threads, MaxTokens: cfg.Batch}); err != nil {
		return nil, err
	}
	res.Params = r.tr.Params()
	res.UpcastMB = float64(r.tr.UpcastBytes()) / (1 << 20)
	res.StateMB = float64(r.tr.StateBytes()) / (1 << 20)
	if cfg.Full {
		logger.Info().Int("params", res.Params).Float64("state_mib", round2(res.StateMB)).Msg("full trainer ready (every weight trainable)")
	} else {
		logger.Info().Int("params", res.Params).Float64("state_mib", round2(res.StateMB)).Float64("f32_copies_mib", round2(res.UpcastMB)).
			Int("rank", cfg.Rank).Float64("alpha", cfg.Alpha).Strs("targets", cfg.Targets).Msg("LoRA trainer ready")
	}
	if j.ck != nil {
		if err := j.ck.restore(cfg.CheckpointPath(), r.tr); err != nil {
			r.closeTrainer()
			return nil, err
		}
		r.start, r.tokens, r.seconds = j.ck.step, j.ck.tokens, j.ck.seconds
		res.StartedAt = r.start
		logger.Info().Int("step", r.start).Int("steps", len(j.steps)).Msg("resuming from checkpoint")
	}
	if r.log, err = openStepLog(cfg.LogPath(), r.start); err != nil {
		r.closeTrainer()
		return nil, err
	}
	return r, nil
}

// close ends the progress bar, the step log and the trainer, in that order.
func (r *run) close() {
	if r.bar != nil {
		r.bar.Finish()
	}
	r.log.Close()
	r.closeTrainer()
}

// train makes the steps after r.start, measuring the held-out loss first on
// a fresh run. It stops early when ctx is cancelled, with a checkpoint and
// an *InterruptedError.
func (r *run) train(ctx context.Context, res *Result) error {
	if r.start == 0 && len(r.evalBatches) > 0 {
		if err := r.evalBefore(res); err != nil {
			return err
		}
	}
	if r.cfg.Progress {
		lg := r.cfg.Logger
		r.bar = progress.New(progress.Options{Out: r.cfg.ProgressOut, Total: int64(len(r.steps)), Unit: "steps",
			RateCounter: "tok", Message: "finetune", Logger: &lg})
		r.bar.Advance(int64(r.start))
	}
	for s := r.start + 1; s <= len(r.steps); s++ {
		stats, err := r.step(s)
		if err != nil {
			return err
		}
		if s%r.evalEvery == 0 || s == len(r.steps) {
			if err := r.evalAfter(&stats, res); err != nil {
				return err
			}
		}
		if err := r.record(stats, res); err != nil {
			return err
		}
		if err := r.snapshot(s); err != nil {
			return err
		}
		if err := r.checkpoint(ctx, s, res); err != nil {
			return err
		}
	}
	res.StepsDone = len(r.steps)
	res.Tokens, res.TokensPS = r.tokens, r.tokensPerSecond()
	return nil
}

// step makes optimizer step s (1-based): the summed gradient of its
// micro-batches, clipped to MaxGradNorm, then one AdamW update.
func (r *run) step(s int) (StepStats, error) {
	st := r.steps[s-1]
	t0 := time.Now()
	if err := r.tr.ZeroGrad(); err != nil {
		return StepStats{}, err
	}
	var loss lm.BatchLoss
	weight := 1 / float32(st.scored)
	for _, mb := range st.micro {
		if err := batchOf(&r.batch, r.examples, mb); err != nil {
			return StepStats{}, err
		}
		l, err := r.tr.Accumulate(&r.batch, weight)
		if err != nil {
			return StepStats{}, err
		}
		loss = loss.Add(l)
	}
	norm, err := r.tr.GradNorm()
	if err != nil {
		return StepStats{}, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return StepStats{}, &DivergedError{Step: s, GradNorm: norm, Loss: loss.Mean()}
	}
	scale := 1.0
	if r.cfg.MaxGradNorm > 0 && norm > r.cfg.MaxGradNorm {
		scale = r.cfg.MaxGradNorm / norm
	}
	lr := learningRate(r.cfg.LR, r.cfg.Schedule, s, len(r.steps), r.warmup)
	if err := r.tr.Update(lm.AdamW{LR: float32(lr), Beta1: adamBeta1, Beta2: adamBeta2, Eps: adamEps,
		WeightDecay: float32(r.cfg.WeightDecay), GradScale: float32(scale), Step: int64(s)}); err != nil {
		return StepStats{}, err
	}
	r.seconds += time.Since(t0).Seconds()
	r.tokens += int64(st.tokens)
	return StepStats{Step: s, Steps: len(r.steps), Epoch: st.epoch + 1, LR: lr, Loss: loss.Mean(),
		Accuracy: float64(loss.Correct) / float64(max(1, loss.Scored)), Scored: loss.Scored, Tokens: st.tokens,
		GradNorm: norm, TokensPS: r.tokensPerSecond(), Elapsed: r.seconds, EvalLoss: math.NaN()}, nil
}

func (r *run) tokensPerSecond() float64 { return float64(r.tokens) / math.Max(r.seconds, 1e-9) }

// evaluate is the mean loss over the held-out rows (NaN when there are
// none) and the number of tokens it scored.
func (r *run) evaluate() (float64, int, error) {
	if len(r.evalBatches) == 0 {
		return math.NaN(), 0, nil
	}
	var total lm.BatchLoss
	for _, mb := range r.evalBatches {
		if err := batchOf(&r.batch, r.examples, mb); err != nil {
			return 0, 0, err
		}
		l, err := r.tr.Evaluate(&r.batch)
		if err != nil {
			return 0, 0, err
		}
		total = total.Add(l)
	}
	return total.Mean(), total.Scored, nil
}

// evalBefore measures and logs the held-out loss of the untrained model
// (step 0 of the log).
func (r *run) evalBefore(res *Result) error {
	l, n, err := r.evaluate()
	if err != nil {
		return err
	}
	res.EvalLoss0 = l
	r.cfg.Logger.Info().Float64("eval_loss", round4(l)).Int("scored_tokens", n).Msg("held-out loss before training")
	return r.log.add(StepStats{Step: 0, Epoch: 0, LR: math.NaN(), Loss: math.NaN(), Accuracy: math.NaN(),
		GradNorm: math.NaN(), TokensPS: math.NaN(), EvalLoss: l, EvalScore: n})
}

// evalAfter adds the held-out loss to a step's stats and logs the step.
func (r *run) evalAfter(stats *StepStats, res *Result) error {
	var err error
	if stats.EvalLoss, stats.EvalScore, err = r.evaluate(); err != nil {
		return err
	}
	ev := r.cfg.Logger.Info().Int("step", stats.Step).Int("steps", len(r.steps)).Int("epoch", stats.Epoch).Float64("loss", round4(stats.Loss)).
		Float64("lr", stats.LR).Float64("grad_norm", round4(stats.GradNorm)).Float64("tok_per_s", round2(stats.TokensPS))
	if !math.IsNaN(stats.EvalLoss) {
		res.EvalLoss = stats.EvalLoss
		ev = ev.Float64("eval_loss", round4(stats.EvalLoss))
	}
	ev.Msg("finetune")
	return nil
}

// record puts a finished step into the result, the step log, the progress
// bar and Config.OnStep.
func (r *run) record(stats StepStats, res *Result) error {
	if stats.Step == r.start+1 {
		res.ComputeMB = float64(r.tr.ComputeBytes()) / (1 << 20)
		r.cfg.Logger.Info().Float64("compute_mib", round2(res.ComputeMB)).Int("batch_tokens", r.cfg.Batch).Msg("memory for activations")
	}
	if math.IsNaN(res.FirstLoss) {
		res.FirstLoss = stats.Loss
	}
	res.FinalLoss = stats.Loss
	res.StepsDone = stats.Step
	if err := r.log.add(stats); err != nil {
		return err
	}
	if r.bar != nil {
		for _, g := range []struct {
			name string
			v    float64
		}{{"loss", stats.Loss}, {"eval", stats.EvalLoss}} {
			if !math.IsNaN(g.v) {
				r.bar.Set(g.name, g.v)
			}
		}
		r.bar.Add("tok", int64(stats.Tokens))
		r.bar.Advance(1)
	}
	if r.cfg.OnStep != nil {
		r.cfg.OnStep(stats)
	}
	return nil
}

// snapshot writes the model after step s when s ends the i-th of
// Config.Snapshots equal parts of a full run (not the last: that is the
// output), for learning curves.
func (r *run) snapshot(s int) error {
	n, parts := len(r.steps), r.cfg.Snapshots
	if !r.cfg.Full || parts < 2 || s == n {
		return nil
	}
	for i := 1; i < parts; i++ {
		if s != (n*i+parts/2)/parts {
			continue
		}
		path := r.cfg.SnapshotPath(100 * i / parts)
		if err := writeFullModel(path, r.base, r.tr, func(w *gguf.Writer) {
			w.SetString(KeyMethod, "full")
			w.SetString(KeyBaseFile, r.base.FileName())
			w.SetString(KeyBaseFingerprint, r.base.Fingerprint)
		}); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		r.cfg.Logger.Info().Int("step", s).Str("path", path).Msg("snapshot written")
	}
	return nil
}

// checkpoint saves the state after step s when ctx is cancelled (and
// returns an *InterruptedError) or every Config.CheckpointEvery steps. The
// last step saves none: the output is written instead.
func (r *run) checkpoint(ctx context.Context, s int, res *Result) error {
	last := s == len(r.steps)
	interrupted := ctx.Err() != nil && !last
	every := r.cfg.CheckpointEvery > 0 && s%r.cfg.CheckpointEvery == 0 && !last
	if !interrupted && !every {
		return nil
	}
	path := r.cfg.CheckpointPath()
	if err := saveCheckpoint(path, r.tr, r.base, r.set, s, r.tokens, r.seconds); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	r.cfg.Logger.Info().Int("step", s).Str("path", path).Msg("checkpoint saved")
	if !interrupted {
		return nil
	}
	res.Checkpoint = path
	res.Tokens, res.TokensPS = r.tokens, r.tokensPerSecond()
	return &InterruptedError{Step: s, Steps: len(r.steps), Checkpoint: path}
}

// finish writes what a finished run leaves: the model or adapter, then,
// with the checkpoint removed, the loss plot and the merged model.
func (r *run) finish(m Model, res *Result) error {
	cfg, logger := r.cfg, r.cfg.Logger
	if err := r.writeOutput(res); err != nil {
		return err
	}
	if path := cfg.CheckpointPath(); fileExists(path) {
		if err := os.Remove(path); err != nil {
			logger.Warn().Err(err).Msg("could not remove the checkpoint of the finished run")
		}
	}
	method := fmt.Sprintf("LoRA r=%d", cfg.Rank)
	if cfg.Full {
		method = "full"
	}
	if err := plotLoss(cfg.PlotPath(), r.log.points, fmt.Sprintf("%s · %s · %s", r.base.FileName(), method, filepath.Base(cfg.Data))); err != nil {
		logger.Warn().Err(err).Msg("loss plot not written")
	} else {
		res.Plot = cfg.PlotPath()
	}
	if cfg.Merge != "" {
		ms, err := Merge(m.Path(), cfg.Out, cfg.Merge, 1)
		if err != nil {
			return err
		}
		res.Merged = cfg.Merge
		logger.Info().Str("path", cfg.Merge).Int("tensors", ms.Tensors).Msg("merged model written")
	}
	return nil
}

// facts writes the run's facts (steps, data, mode, losses) into the header
// of the trained model or adapter.
func (r *run) facts(res *Result) func(*gguf.Writer) {
	return func(w *gguf.Writer) {
		w.SetUint32(KeySteps, uint32(len(r.steps)))
		w.SetUint32(KeyEpochs, uint32(r.cfg.Epochs))
		w.SetUint64(KeyTokens, uint64(r.tokens))
		w.SetString(KeyData, filepath.Base(r.cfg.Data))
		w.SetString(KeyMode, string(r.cfg.Mode))
		w.SetString(KeyFormat, string(r.cfg.Format))
		if r.cfg.Extraction != nil {
			w.SetString(KeyTask, TaskExtract)
			w.SetString(KeyTemplate, r.cfg.Extraction.Hash())
		}
		w.SetUint64(KeySeed, r.cfg.Seed)
		if !math.IsNaN(res.FinalLoss) {
			w.SetFloat64(KeyTrainLoss, res.FinalLoss)
		}
		if !math.IsNaN(res.EvalLoss) {
			w.SetFloat64(KeyEvalLoss, res.EvalLoss)
		}
	}
}

// writeOutput writes the trained model (Full) or adapter to Config.Out,
// with the run's facts in its header.
func (r *run) writeOutput(res *Result) error {
	cfg := r.cfg
	facts := r.facts(res)
	what := "adapter written"
	var err error
	if cfg.Full {
		what = "model written"
		err = writeFullModel(cfg.Out, r.base, r.tr, func(w *gguf.Writer) {
			w.SetString(KeyMethod, "full")
			w.SetString(KeyBaseFile, r.base.FileName())
			w.SetString(KeyBaseFingerprint, r.base.Fingerprint)
			facts(w)
		})
	} else {
		var final []adapterTensor
		if final, err = trainedTensors(r.tr); err == nil {
			meta := r.meta
			meta.extra = facts
			err = writeAdapter(cfg.Out, meta, final)
		}
	}
	if err != nil {
		return err
	}
	if cfg.Full {
		res.Model = cfg.Out
	} else {
		res.Adapter = cfg.Out
	}
	ev := cfg.Logger.Info().Str("path", cfg.Out).Int("steps", len(r.steps)).Float64("loss", round4(res.FinalLoss)).
		Float64("tok_per_s", round2(res.TokensPS))
	if !math.IsNaN(res.EvalLoss) {
		ev = ev.Float64("eval_loss", round4(res.EvalLoss))
	}
	ev.Msg(what)
	return nil
}

// newTrainer makes the trainer cfg asks for and returns it with the function
// that frees it (and the adapter it trains).
func newTrainer(m Model, cfg Config, base *Base, meta adapterMeta, topts lm.TrainerOptions) (lm.Trainer, func(), error) {
	if cfg.Full {
		tr, err := m.OpenTrainer("", topts)
		if err != nil {
			return nil, nil, err
		}
		return tr, func() { tr.Close() }, nil
	}
	// The adapter starts as a file so that llama.cpp allocates its tensors
	// exactly as for inference (same buffer types as the base weights).
	init, err := initialAdapter(base, cfg.Rank, cfg.Targets, cfg.Seed)
	if cfg.From != "" {
		init, err = continuedAdapter(base, cfg)
	}
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(cfg.Out), "."+filepath.Base(cfg.Out)+".init-*.gguf")
	if err != nil {
		return nil, nil, fmt.Errorf("adapter: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := writeAdapter(tmp.Name(), meta, init); err != nil {
		return nil, nil, err
	}
	tr, err := m.OpenTrainer(tmp.Name(), topts)
	if err != nil {
		return nil, nil, err
	}
	return tr, func() { tr.Close() }, nil
}

// trainedTensors reads the adapter's current values in the file layout.
func trainedTensors(tr lm.Trainer) ([]adapterTensor, error) {
	var out []adapterTensor
	for i, tt := range tr.Tensors() {
		v, err := tr.Get(i, lm.TensorValue)
		if err != nil {
			return nil, err
		}
		shape := make([]uint64, len(tt.Shape))
		for j, d := range tt.Shape {
			shape[j] = uint64(d)
		}
		out = append(out, adapterTensor{Name: tt.Name, Shape: shape, Values: v})
	}
	return out, nil
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
