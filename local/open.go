package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/chat"
	"github.com/codeplan-dev/codeplan/extract"
	"github.com/codeplan-dev/codeplan/inference"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/chattemplate"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/lm"
	"github.com/codeplan-dev/codeplan/llama/loglik"
	"github.com/codeplan-dev/codeplan/planner"
)

// FileError is a model or adapter file that does not load: bad input, not
// a failure of the run.
type FileError struct{ Err error }

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Model is a loaded local model: its context for the run's sequences and
// the adapter applied to it, and everything opened on top of it (engines,
// scorers), which its one Close frees in the right order.
type Model struct {
	Model   *llama.Model
	Ctx     *llama.Context
	Adapter *llama.Adapter // nil without one
	Path    string

	opts    Options
	log     zerolog.Logger
	closers []func()
}

// Open loads the model of o (GPU backends must already be loaded when
// o.GPULayers is not 0) and creates a context for o.Parallel sequences plus
// extra (the engine's prefix cache uses one), attaching o.LoRA. A model or
// adapter that does not load is a *FileError; a KV cache setting the model
// cannot use wraps llama.ErrKVCache.
func Open(o Options, extra int, log zerolog.Logger) (*Model, error) {
	start := time.Now()
	lastLog := time.Now()
	m, err := llama.LoadModel(o.Path, llama.ModelOptions{
		GPULayers: o.GPULayers,
		Repack:    true, // inference only: interleaved Q4_0/Q4_K/IQ4_NL weights, as llama.cpp does
		Progress: func(f float32) bool {
			if time.Since(lastLog) > 2*time.Second {
				log.Info().Str("model", o.Path).Msgf("loading %3.0f%%", f*100)
				lastLog = time.Now()
			}
			return true
		},
	})
	if err != nil {
		return nil, &FileError{err}
	}
	l := &Model{Model: m, Path: o.Path, opts: o, log: log}
	info, _ := m.Info()
	fa := o.FlashAttn
	if fa == "" {
		fa = "off"
		if o.GPULayers != 0 {
			fa = "auto"
		}
	}
	l.Ctx, err = m.NewContext(llama.ContextOptions{
		ContextSize:    o.ContextSize(info.ContextLength, extra), // as the settings key plans it (SeqContext)
		BatchSize:      o.Batch,
		Sequences:      o.Sequences(extra),
		Threads:        o.Threads,
		FlashAttention: fa,
		CacheTypeK:     o.CacheType,
		CacheTypeV:     o.CacheType,
		Poll:           o.poll(),
		UnifiedKV:      o.UnifiedKV,
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	if o.LoRA != "" {
		a, err := m.LoadAdapter(o.LoRA)
		if err != nil {
			l.Close()
			return nil, &FileError{err}
		}
		l.Adapter = a
		if err := l.Ctx.SetAdapter(a, float32(o.LoRAScale)); err != nil {
			l.Close()
			return nil, err
		}
	}
	log.Info().Str("model", filepath.Base(o.Path)).Str("desc", info.Description).
		Int("ctx", l.Ctx.ContextSize()).Int("parallel", max(1, o.Parallel)).Int("gpu_layers", o.GPULayers).
		Int64("load_ms", time.Since(start).Milliseconds()).Msg("model ready")
	return l, nil
}

// poll maps Poll to llama.ContextOptions.Poll (nil = ggml's default).
func (o Options) poll() *int {
	if o.Poll < 0 {
		return nil
	}
	p := o.Poll
	return &p
}

// Names are the model and adapter file names recorded in result rows
// (lora is "" without an adapter).
func (l *Model) Names() (model, lora string) {
	if l.Adapter != nil {
		lora = filepath.Base(l.Adapter.Path())
	}
	return filepath.Base(l.Path), lora
}

// Close frees what was opened on the model (last first), then the context,
// the adapter and the model. Its error is the model's: ErrInUse means
// something made from the model outside this Model is still open.
func (l *Model) Close() error {
	var err error
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
	if l.Ctx != nil {
		l.Ctx.Close()
		l.Ctx = nil
	}
	if l.Adapter != nil {
		l.Adapter.Close()
		l.Adapter = nil
	}
	if l.Model != nil {
		err = l.Model.Close()
		l.Model = nil
	}
	return err
}

// onClose adds fn to what Close frees before the context.
func (l *Model) onClose(fn func()) { l.closers = append(l.closers, fn) }

// Engine starts a continuous-batching engine on the model's context: the
// Generator of generate and eval. Close stops it.
func (l *Model) Engine(o engine.Options) (*engine.Engine, error) {
	eng, err := engine.New(l.Ctx, o)
	if err != nil {
		return nil, err
	}
	l.onClose(func() { eng.Close() })
	return eng, nil
}

// ChatTemplate is the model's own chat template, or ChatML (ok false) when
// llama.cpp does not support it.
func (l *Model) ChatTemplate() (t planner.ChatTemplater, ok bool) { return chattemplate.For(l.Model) }

// Measure runs engine.MeasureBatched on the model's context, with at most
// as many sequences as it holds (extract.Predict's benchmark); the
// context must not be in use.
func (l *Model) Measure(parallel, prompt, gen int) (lm.BatchedResult, error) {
	return engine.MeasureBatched(l.Ctx, min(parallel, l.Ctx.Sequences()), prompt, gen)
}

// SeqTokens is the tokens one sequence of the context holds.
func (l *Model) SeqTokens() int { return l.Ctx.ContextSize() / max(1, l.Ctx.Sequences()) }

// ChoiceScorer makes the log-likelihood scorer of eval --mc-scoring loglik:
// a second context of the model (with its adapter) of seqs sequences, so
// that up to seqs options are scored in one pass, each as long as one of
// the engine's sequences. Close frees it.
func (l *Model) ChoiceScorer(seqs int) (*loglik.Text, error) {
	txt, err := l.scorer(seqs, l.SeqTokens(), l.Model, l.Adapter)
	if err != nil {
		return nil, fmt.Errorf("loglik scorer: %w", err)
	}
	return txt, nil
}

// scorer makes a log-likelihood scorer in a context of its own on model
// (with adapter, if not nil), registered for Close.
func (l *Model) scorer(seqs, window int, model *llama.Model, adapter *llama.Adapter) (*loglik.Text, error) {
	ctx, err := model.NewContext(llama.ContextOptions{ContextSize: seqs * window, Sequences: seqs, BatchSize: l.opts.Batch,
		Threads: l.opts.Threads, FlashAttention: "off", Poll: l.opts.poll()})
	if err != nil {
		return nil, err
	}
	if adapter != nil {
		if err := ctx.SetAdapter(adapter, float32(l.opts.LoRAScale)); err != nil {
			ctx.Close()
			return nil, err
		}
	}
	txt, err := loglik.NewText(model, ctx)
	if err != nil {
		ctx.Close()
		return nil, err
	}
	l.onClose(func() { txt.Close(); ctx.Close() })
	return txt, nil
}

// GainScorer makes extract's plan-gain scorer: on score (another model,
// loaded with the same options) when score.Path is not "", or else on this
// model and its adapter, in a context of its own (two sequences: with and
// without the plan) whose sequences hold as many tokens as the
// extraction's, since the scored texts are about as long as the extraction
// prompt. Close frees it.
func (l *Model) GainScorer(score Options) (extract.GainScorer, error) {
	var (
		model   = l.Model
		adapter = l.Adapter
		window  int
	)
	if score.Path == "" {
		window = l.SeqTokens()
	} else {
		m, err := llama.LoadModel(score.Path, llama.ModelOptions{GPULayers: score.GPULayers})
		if err != nil {
			return nil, &FileError{fmt.Errorf("--score-model: %w", err)}
		}
		l.onClose(func() { m.Close() })
		model, adapter = m, nil
		window = min(4096, max(m.ContextLength(), 512))
	}
	txt, err := l.scorer(2, window, model, adapter)
	if err != nil {
		return nil, fmt.Errorf("gain scorer: %w", err)
	}
	chat, _ := chattemplate.For(model)
	l.log.Info().Str("model", filepath.Base(model.Path())).Int("window", txt.Window()).Msg("gain scorer ready")
	return extract.LocalGain{Text: txt, Chat: chat}, nil
}

// ChatBackend is chat's chat.Backend on the model: one sequence on an
// engine, sampled with Sampling and a new seed each turn.
type ChatBackend struct {
	eng      *engine.Engine
	model    *llama.Model
	sampling llama.SamplerOptions
	// Adapter is the path of the LoRA adapter in use, "" for none.
	Adapter string
	turns   uint32
}

// Chat starts the engine of a chat session: one sequence, whose whole
// context is the history's room. Close stops it.
func (l *Model) Chat(sampling llama.SamplerOptions) (*ChatBackend, error) {
	eng, err := l.Engine(engine.Options{Parallel: 1, SlotContext: l.SeqTokens()})
	if err != nil {
		return nil, err
	}
	b := &ChatBackend{eng: eng, model: l.Model, sampling: sampling}
	if l.Adapter != nil {
		b.Adapter = l.opts.LoRA
	}
	return b, nil
}

// ModelPath is the file of the chat's model.
func (b *ChatBackend) ModelPath() string { return b.model.Path() }

// ContextTokens implements chat.Backend.
func (b *ChatBackend) ContextTokens() int { return b.eng.SlotContext() }

// PromptTokens implements chat.Backend: it tokenises every phase prefix of
// the request exactly as the engine will.
func (b *ChatBackend) PromptTokens(p planner.Prompter, history []planner.Message, user string) (int, error) {
	req, err := inference.Request(p, inference.Settings{}, history, user, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, ph := range req.Phases {
		toks, err := b.model.Tokenize(ph.Prefix, i == 0, true)
		if errors.Is(err, llama.ErrTextTooLong) {
			return 0, fmt.Errorf("%w: %w", chat.ErrTooLong, err)
		}
		if err != nil {
			return 0, err
		}
		n += len(toks)
	}
	return n, nil
}

// Generate implements chat.Backend.
func (b *ChatBackend) Generate(ctx context.Context, p planner.Prompter, set chat.Settings, history []planner.Message, user string, stream func(chat.Phase, string)) (chat.Reply, error) {
	s := inference.Settings{MaxPlanTokens: set.MaxPlanTokens, MaxTokens: set.MaxTokens, Sampling: b.sampling}
	s.Sampling.Temperature, s.Sampling.TopP = float32(set.Temperature), float32(set.TopP)
	// A new seed per turn, derived from --seed: asking the same thing twice
	// gives a fresh sample, and the whole chat stays reproducible.
	s.Sampling.Seed += b.turns
	b.turns++
	req, err := inference.Request(p, s, history, user, func(phase, text string) { stream(chat.Phase(phase), text) })
	if err != nil {
		return chat.Reply{}, err
	}
	req.Ctx = ctx
	if p.Mode.HasPlan() {
		req.OnPhaseEnd = func(phase int, reason lm.FinishReason) {
			if phase == 0 && reason == lm.FinishLength {
				stream(chat.PlanLimit, "")
			}
		}
	}
	res, err := b.eng.Generate(ctx, req)
	a := inference.FromResult(p.Mode, res)
	return chat.Reply{
		Plan: a.Plan, Answer: a.Answer, PlanFinish: a.PlanFinish, Finish: a.Finish,
		PromptTokens: a.PromptTokens, PlanTokens: a.PlanTokens, AnswerTokens: a.AnswerTokens,
	}, err
}

// GainScorerOn makes the gain scorer of a run without a local model (a
// served one): on the model of score alone. Close the returned Model
// after the run.
func GainScorerOn(score Options, log zerolog.Logger) (extract.GainScorer, *Model, error) {
	holder := &Model{opts: score, log: log}
	g, err := holder.GainScorer(score)
	if err != nil {
		holder.Close()
		return nil, nil, err
	}
	return g, holder, nil
}
