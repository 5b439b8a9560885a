// Package local turns the options of a local GGUF model (the model flags
// every command shares) into what a job needs: the model's part of the
// job's settings key, read from the files before anything loads, and the
// tokens each sequence will hold.
package local

import (
	"fmt"
	"path/filepath"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Options are a local model and how to run it.
type Options struct {
	Path string // the GGUF model file

	// LoRA is an adapter file ("" = none) applied with LoRAScale.
	// AdapterKeyed says the command takes --lora, so its key names the
	// adapter (empty when none is used).
	LoRA         string
	LoRAScale    float64
	AdapterKeyed bool

	GPULayers  int    // layers to offload (-1 = all, 0 = CPU only)
	BackendDir string // where the GPU backend libraries are ("" = search)
	Threads    int
	Poll       int // CPU spin-wait, 0-100 (-1 = ggml's default)
	// Ctx is the context in tokens shared by all sequences (0 = Parallel
	// (plus extra sequences) × 4096, capped by the model's own length).
	Ctx       int
	Parallel  int
	Batch     int
	FlashAttn string // auto, on or off ("" = auto with a GPU, off on CPU)
	CacheType string // KV cache type for K and V
	UnifiedKV bool
}

// Key reads the model's header (and hashes the adapter) and returns the
// model's part of a job's settings key: the file name, which tells
// quantizations apart, and the content fingerprint (finetune.Base.
// ContentFingerprint), which tells models apart whatever their file names.
// It samples every tensor and names its method, so a file of rows keyed by
// an older fingerprint is never compared with it as if the model had
// changed (see dataset.SettingsMismatchError). A bad model
// or adapter file is an error here, before anything loads.
func (o Options) Key() (pipeline.ModelKey, error) {
	base, err := finetune.InspectBase(o.Path)
	if err != nil {
		return pipeline.ModelKey{}, err
	}
	k := pipeline.ModelKey{Name: base.FileName(), Fingerprint: base.ContentFingerprint, AdapterKeyed: o.AdapterKeyed}
	if o.AdapterKeyed && o.LoRA != "" {
		sum, err := dataset.ContentHash(o.LoRA)
		if err != nil {
			return pipeline.ModelKey{}, fmt.Errorf("--lora: %w", err)
		}
		k.LoRA, k.LoRAScale = baseName(o.LoRA)+"@"+sum, o.LoRAScale
	}
	return k, nil
}

// Sequences is the number of sequences a context of these options holds:
// Parallel (at least 1) and extra ones (the prefix cache uses one).
func (o Options) Sequences(extra int) int { return max(1, o.Parallel) + extra }

// ContextSize is the total context of these options for a model trained
// with trainCtx tokens: Ctx, or 4096 per sequence capped by trainCtx (and
// at least 512).
func (o Options) ContextSize(trainCtx, extra int) int {
	if o.Ctx > 0 {
		return o.Ctx
	}
	return min(4096, max(trainCtx, 512)) * o.Sequences(extra)
}

// SeqContext is the number of tokens one sequence may hold: the context
// divided among the sequences, or all of it with UnifiedKV. It reads the
// model's header for its trained context length.
func (o Options) SeqContext(extra int) (int, error) {
	f, err := gguf.Open(o.Path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	train, _ := f.Uint32(arch + ".context_length")
	n := o.ContextSize(int(train), extra)
	if o.UnifiedKV {
		return n, nil
	}
	return n / o.Sequences(extra), nil
}

func baseName(p string) string { return filepath.Base(p) }
