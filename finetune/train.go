package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/codeplan-dev/codeplan/chattemplate"
	"github.com/codeplan-dev/codeplan/internal/progress"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/planner"
)

// ErrInterrupted is returned when the context was cancelled: the step in
// progress was finished and a checkpoint written, and Config.Resume
// continues from it.
var ErrInterrupted = errors.New("fine-tuning interrupted")

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

// Run fine-tunes a LoRA adapter for m on cfg.Data and writes it to cfg.Out.
// Every check that can fail on the inputs (architecture, weight types, data
// without usable rows, a checkpoint from another base or with other
// settings) runs before the first training step.
func Run(ctx context.Context, m *llama.Model, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	res := &Result{Log: cfg.LogPath(), EvalLoss0: math.NaN(), EvalLoss: math.NaN(), FirstLoss: math.NaN(), FinalLoss: math.NaN()}

	base, err := InspectBase(m.Path())
	if err != nil {
		return nil, err
	}
	if err := checkBase(cfg, base); err != nil {
		return nil, err
	}
	if sameFile(cfg.Out, base.Path) {
		return nil, fmt.Errorf("--out %s is the model being trained", cfg.Out)
	}
	chat := cfg.Chat
	if chat == nil {
		var native bool
		chat, native = chattemplate.For(m)
		if !native {
			logger.Warn().Msg("llama.cpp does not support this model's chat template; training with ChatML")
		}
	}
	warned := 0
	examples, stats, err := LoadExamples(cfg.Data, DataOptions{
		Read: cfg.Read, PlanField: cfg.PlanField, Tokenizer: m, Ctx: cfg.Ctx, Extraction: cfg.Extraction,
		Prompter: planner.Prompter{Mode: cfg.Mode, Format: cfg.Format, Chat: chat, System: cfg.System},
		Warn: func(msg string) {
			warned++
			if warned <= 20 {
				logger.Warn().Msg(msg)
			} else if warned == 21 {
				logger.Warn().Msg("more rows were truncated or skipped; see the totals below")
			}
		},
	})
	res.Data = stats
	if err != nil {
		return res, err
	}
	train, val := splitValidation(examples, cfg.ValSplit, cfg.Seed)
	res.TrainRows, res.EvalRows = len(train), len(val)
	steps := planSteps(examples, train, cfg.Epochs, cfg.Seed, cfg.Batch, cfg.GradAccum)
	res.Steps = len(steps)
	evalBatches := pack(examples, val, cfg.Batch)
	logger.Info().Int("rows", stats.Rows).Int("used", stats.Used).Int("train", len(train)).Int("held_out", len(val)).
		Int("truncated", stats.Truncated).Int("skipped", stats.Skipped).Int64("tokens", stats.Tokens).
		Int64("scored_tokens", stats.ScoredTokens).Int("steps", len(steps)).Msg("training data")
	if stats.Skipped > 0 {
		logger.Warn().Msg(stats.skipSummary())
	}

	sys := sha256.Sum256([]byte(cfg.System))
	set := settings{
		data: dataHash(examples), rank: cfg.Rank, alpha: cfg.Alpha, targets: cfg.Targets, epochs: cfg.Epochs,
		lr: cfg.LR, warmup: cfg.Warmup, schedule: cfg.Schedule, ctx: cfg.Ctx, batch: cfg.Batch, gradAccum: cfg.GradAccum,
		valSplit: cfg.ValSplit, seed: cfg.Seed, maxGradNorm: cfg.MaxGradNorm, weightDecay: cfg.WeightDecay,
		mode: string(cfg.Mode), format: string(cfg.Format), systemHash: hex.EncodeToString(sys[:8]), full: cfg.Full,
	}
	ckptPath := cfg.CheckpointPath()
	var ck *checkpoint
	switch {
	case cfg.Resume:
		if !fileExists(ckptPath) {
			return res, cfg.noCheckpoint()
		}
		if ck, err = loadCheckpoint(ckptPath); err != nil {
			return res, err
		}
		if err := ck.check(ckptPath, base, set); err != nil {
			return res, err
		}
		if ck.step > len(steps) {
			return res, fmt.Errorf("%s: checkpoint is at step %d, but the run has only %d steps", ckptPath, ck.step, len(steps))
		}
	case fileExists(ckptPath):
		return res, fmt.Errorf("a checkpoint of an earlier run exists at %s: pass --resume to continue it, or delete it to start over", ckptPath)
	}

	meta := adapterMeta{base: base, alpha: float32(cfg.Alpha), rank: cfg.Rank, targets: cfg.Targets}
	tr, closeTrainer, err := newTrainer(m, cfg, base, meta)
	if err != nil {
		return res, err
	}
	defer closeTrainer()
	res.Params = tr.Params()
	res.UpcastMB = float64(tr.UpcastBytes()) / (1 << 20)
	res.StateMB = float64(tr.StateBytes()) / (1 << 20)
	if cfg.Full {
		logger.Info().Int("params", res.Params).Float64("state_mib", round2(res.StateMB)).Msg("full trainer ready (every weight trainable)")
	} else {
		logger.Info().Int("params", res.Params).Float64("state_mib", round2(res.StateMB)).Float64("f32_copies_mib", round2(res.UpcastMB)).
			Int("rank", cfg.Rank).Float64("alpha", cfg.Alpha).Strs("targets", cfg.Targets).Msg("LoRA trainer ready")
	}

	start := 0
	var tokens int64
	var seconds float64
	if ck != nil {
		if err := ck.restore(ckptPath, tr); err != nil {
			return res, err
		}
		start, tokens, seconds = ck.step, ck.tokens, ck.seconds
		res.StartedAt = start
		logger.Info().Int("step", start).Int("steps", len(steps)).Msg("resuming from checkpoint")
	}
	slog, err := openStepLog(cfg.LogPath(), start)
	if err != nil {
		return res, err
	}
	defer slog.Close()

	evaluate := func() (float64, int, error) {
		if len(evalBatches) == 0 {
			return math.NaN(), 0, nil
		}
		var b llama.TrainBatch
		var total llama.BatchLoss
		for _, mb := range evalBatches {
			if err := batchOf(&b, examples, mb); err != nil {
				return 0, 0, err
			}
			l, err := tr.Evaluate(&b)
			if err != nil {
				return 0, 0, err
			}
			total = total.Add(l)
		}
		return total.Mean(), total.Scored, nil
	}
	if start == 0 && len(evalBatches) > 0 {
		l, n, err := evaluate()
		if err != nil {
			return res, err
		}
		res.EvalLoss0 = l
		logger.Info().Float64("eval_loss", round4(l)).Int("scored_tokens", n).Msg("held-out loss before training")
		if err := slog.add(StepStats{Step: 0, Epoch: 0, LR: math.NaN(), Loss: math.NaN(), Accuracy: math.NaN(),
			GradNorm: math.NaN(), TokensPS: math.NaN(), EvalLoss: l, EvalScore: n}); err != nil {
			return res, err
		}
	}

	var bar *progress.Reporter
	if cfg.Progress {
		lg := logger
		bar = progress.New(progress.Options{Out: cfg.ProgressOut, Total: int64(len(steps)), Unit: "steps",
			RateCounter: "tok", Message: "finetune", Logger: &lg})
		bar.Advance(int64(start))
		defer bar.Finish()
	}
	gauge := func(name string, v float64) {
		if bar != nil && !math.IsNaN(v) {
			bar.Set(name, v)
		}
	}

	evalEvery := cfg.EvalEvery
	if evalEvery == 0 {
		evalEvery = max(1, len(steps)/10)
	}
	warm := warmupSteps(cfg.Warmup, len(steps))
	var b llama.TrainBatch
	for s := start + 1; s <= len(steps); s++ {
		st := steps[s-1]
		t0 := time.Now()
		if err := tr.ZeroGrad(); err != nil {
			return res, err
		}
		var loss llama.BatchLoss
		weight := 1 / float32(st.scored)
		for _, mb := range st.micro {
			if err := batchOf(&b, examples, mb); err != nil {
				return res, err
			}
			l, err := tr.Accumulate(&b, weight)
			if err != nil {
				return res, err
			}
			loss = loss.Add(l)
		}
		norm, err := tr.GradNorm()
		if err != nil {
			return res, err
		}
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			return res, fmt.Errorf("step %d: gradient norm is %g (loss %g); lower --lr", s, norm, loss.Mean())
		}
		scale := 1.0
		if cfg.MaxGradNorm > 0 && norm > cfg.MaxGradNorm {
			scale = cfg.MaxGradNorm / norm
		}
		lr := learningRate(cfg.LR, cfg.Schedule, s, len(steps), warm)
		if err := tr.Update(llama.AdamW{LR: float32(lr), Beta1: adamBeta1, Beta2: adamBeta2, Eps: adamEps,
			WeightDecay: float32(cfg.WeightDecay), GradScale: float32(scale), Step: int64(s)}); err != nil {
			return res, err
		}
		seconds += time.Since(t0).Seconds()
		tokens += int64(st.tokens)

		stats := StepStats{Step: s, Steps: len(steps), Epoch: st.epoch + 1, LR: lr, Loss: loss.Mean(),
			Accuracy: float64(loss.Correct) / float64(max(1, loss.Scored)), Scored: loss.Scored, Tokens: st.tokens,
			GradNorm: norm, TokensPS: float64(tokens) / math.Max(seconds, 1e-9), Elapsed: seconds, EvalLoss: math.NaN()}
		if s%evalEvery == 0 || s == len(steps) {
			if stats.EvalLoss, stats.EvalScore, err = evaluate(); err != nil {
				return res, err
			}
			ev := logger.Info().Int("step", s).Int("steps", len(steps)).Int("epoch", stats.Epoch).Float64("loss", round4(stats.Loss)).
				Float64("lr", lr).Float64("grad_norm", round4(norm)).Float64("tok_per_s", round2(stats.TokensPS))
			if !math.IsNaN(stats.EvalLoss) {
				res.EvalLoss = stats.EvalLoss
				ev = ev.Float64("eval_loss", round4(stats.EvalLoss))
			}
			ev.Msg("finetune")
		}
		if s == start+1 {
			res.ComputeMB = float64(tr.ComputeBytes()) / (1 << 20)
			logger.Info().Float64("compute_mib", round2(res.ComputeMB)).Int("batch_tokens", cfg.Batch).Msg("memory for activations")
		}
		if math.IsNaN(res.FirstLoss) {
			res.FirstLoss = stats.Loss
		}
		res.FinalLoss = stats.Loss
		res.StepsDone = s
		if err := slog.add(stats); err != nil {
			return res, err
		}
		if bar != nil {
			gauge("loss", stats.Loss)
			gauge("eval", stats.EvalLoss)
			bar.Add("tok", int64(st.tokens))
			bar.Advance(1)
		}
		if cfg.OnStep != nil {
			cfg.OnStep(stats)
		}
		interrupted := ctx.Err() != nil && s < len(steps)
		if interrupted || (cfg.CheckpointEvery > 0 && s%cfg.CheckpointEvery == 0 && s < len(steps)) {
			if err := saveCheckpoint(ckptPath, tr, base, set, s, tokens, seconds); err != nil {
				return res, fmt.Errorf("checkpoint: %w", err)
			}
			logger.Info().Int("step", s).Str("path", ckptPath).Msg("checkpoint saved")
		}
		if interrupted {
			res.Checkpoint = ckptPath
			res.Tokens, res.TokensPS = tokens, float64(tokens)/math.Max(seconds, 1e-9)
			return res, fmt.Errorf("%w after step %d of %d; checkpoint %s (rerun with --resume)", ErrInterrupted, s, len(steps), ckptPath)
		}
	}
	res.StepsDone = len(steps)
	res.Tokens, res.TokensPS = tokens, float64(tokens)/math.Max(seconds, 1e-9)

	extra := func(w *gguf.Writer) {
		w.SetUint32(KeySteps, uint32(len(steps)))
		w.SetUint32(KeyEpochs, uint32(cfg.Epochs))
		w.SetUint64(KeyTokens, uint64(tokens))
		w.SetString(KeyData, filepath.Base(cfg.Data))
		w.SetString(KeyMode, string(cfg.Mode))
		w.SetString(KeyFormat, string(cfg.Format))
		if cfg.Extraction != nil {
			w.SetString(KeyTask, TaskExtract)
			w.SetString(KeyTemplate, cfg.Extraction.Hash())
		}
		w.SetUint64(KeySeed, cfg.Seed)
		if !math.IsNaN(res.FinalLoss) {
			w.SetFloat64(KeyTrainLoss, res.FinalLoss)
		}
		if !math.IsNaN(res.EvalLoss) {
			w.SetFloat64(KeyEvalLoss, res.EvalLoss)
		}
	}
	what := "adapter written"
	if cfg.Full {
		what = "model written"
		err = writeFullModel(cfg.Out, base, tr, func(w *gguf.Writer) {
			w.SetString(KeyMethod, "full")
			w.SetString(KeyBaseFile, base.FileName())
			w.SetString(KeyBaseFingerprint, base.Fingerprint)
			extra(w)
		})
	} else {
		var final []adapterTensor
		if final, err = trainedTensors(tr); err == nil {
			meta.extra = extra
			err = writeAdapter(cfg.Out, meta, final)
		}
	}
	if err != nil {
		return res, err
	}
	if cfg.Full {
		res.Model = cfg.Out
	} else {
		res.Adapter = cfg.Out
	}
	ev := logger.Info().Str("path", cfg.Out).Int("steps", len(steps)).Float64("loss", round4(res.FinalLoss)).
		Float64("tok_per_s", round2(res.TokensPS))
	if !math.IsNaN(res.EvalLoss) {
		ev = ev.Float64("eval_loss", round4(res.EvalLoss))
	}
	ev.Msg(what)
	if fileExists(ckptPath) {
		if err := os.Remove(ckptPath); err != nil {
			logger.Warn().Err(err).Msg("could not remove the checkpoint of the finished run")
		}
	}
	method := fmt.Sprintf("LoRA r=%d", cfg.Rank)
	if cfg.Full {
		method = "full"
	}
	if err := plotLoss(cfg.PlotPath(), slog.points, fmt.Sprintf("%s · %s · %s", base.FileName(), method, filepath.Base(cfg.Data))); err != nil {
		logger.Warn().Err(err).Msg("loss plot not written")
	} else {
		res.Plot = cfg.PlotPath()
	}
	if cfg.Merge != "" {
		ms, err := Merge(m.Path(), cfg.Out, cfg.Merge, 1)
		if err != nil {
			return res, err
		}
		res.Merged = cfg.Merge
		logger.Info().Str("path", cfg.Merge).Int("tensors", ms.Tensors).Msg("merged model written")
	}
	return res, nil
}

// newTrainer makes the trainer cfg asks for and returns it with the function
// that frees it (and the adapter it trains).
func newTrainer(m *llama.Model, cfg Config, base *Base, meta adapterMeta) (*llama.Trainer, func(), error) {
	topts := llama.TrainerOptions{Threads: cfg.Threads, MaxTokens: cfg.Batch}
	if cfg.Full {
		tr, err := m.NewFullTrainer(topts)
		if err != nil {
			return nil, nil, err
		}
		return tr, func() { tr.Close() }, nil
	}
	// The adapter starts as a file so that llama.cpp allocates its tensors
	// exactly as for inference (same buffer types as the base weights).
	init, err := initialAdapter(base, cfg.Rank, cfg.Targets, cfg.Seed)
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
	adapter, err := m.LoadAdapter(tmp.Name())
	if err != nil {
		return nil, nil, err
	}
	tr, err := m.NewTrainer(adapter, llama.TrainerOptions{Threads: cfg.Threads, MaxTokens: cfg.Batch})
	if err != nil {
		adapter.Close()
		return nil, nil, err
	}
	return tr, func() { tr.Close(); adapter.Close() }, nil
}

// trainedTensors reads the adapter's current values in the file layout.
func trainedTensors(tr *llama.Trainer) ([]adapterTensor, error) {
	var out []adapterTensor
	for i, tt := range tr.Tensors() {
		v, err := tr.Get(i, llama.TensorValue)
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
