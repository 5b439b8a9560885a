package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/local"
)

// tinyModelName is the MODEL value that selects the built-in random model.
const tinyModelName = "tiny"

// modelFlags are the flags of every command that runs a model (README,
// "Command-line conventions").
func modelFlags(defaultParallel int) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `PATH` (or the first argument; \"tiny\" = built-in test model)"},
		&cli.BoolFlag{Name: "gpu", Usage: "offload all layers to the GPU backend (needs 'make cuda', or Metal)"},
		&cli.IntFlag{Name: "ngl", Usage: "offload `N` layers to the GPU backend"},
		&cli.StringFlag{Name: "backend-dir", EnvVars: []string{"CODEPLAN_BACKEND_DIR"}, Usage: "folder with GPU backend libraries (default: lib/codeplan next to or above the binary)"},
		&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "CPU threads"},
		&cli.IntFlag{Name: "poll", Value: 0, Usage: "0-100: how hard idle CPU threads spin-wait for work (-1 = ggml's default of 50); 0 costs little on an idle machine and avoids collapses of up to 40x on a busy one"},
		&cli.IntFlag{Name: "ctx", Usage: "context tokens in total, shared by the parallel sequences (0 = parallel × 4096, capped by the model)"},
		&cli.IntFlag{Name: "parallel", Aliases: []string{"np"}, Value: defaultParallel, Usage: "sequences decoded together"},
		&cli.IntFlag{Name: "batch", Value: 512, Usage: "most tokens per decode step (prompt chunks and generated tokens together)"},
		&cli.StringFlag{Name: "flash-attn", Usage: "flash attention: auto, on or off (default: auto with --gpu/--ngl, off on CPU, where ggml's flash attention processed prompts ~5x slower in our measurements)"},
		&cli.StringFlag{Name: "cache-type", Value: "f16", Usage: "KV cache type for K and V: f16, q8_0, q4_0, f32"},
		&cli.BoolFlag{Name: "kv-unified", Usage: "one KV pool shared by all sequences (shared prefixes cost nothing to copy) instead of one stream per sequence"},
	}
}

// loraFlags are --lora and --lora-scale.
func loraFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "lora", Usage: "apply the GGUF LoRA adapter at `PATH`"},
		&cli.Float64Flag{Name: "lora-scale", Value: 1, Usage: "scale of the LoRA adapter"},
	}
}

// modelPath resolves MODEL / --model; "tiny" writes or finds the built-in
// model in the user cache.
func modelPath(c *cli.Context) (string, error) {
	p := c.String("model")
	if p == "" {
		p = c.Args().First()
	}
	if p == "" {
		return "", usagef("%s: no model given: pass MODEL.gguf as the first argument or --model PATH (\"tiny\" for the built-in test model)", c.Command.Name)
	}
	if p == tinyModelName {
		return tiny.DefaultPath()
	}
	return p, nil
}

// loaded is a model with its context and, if asked for, a LoRA adapter
// (local.Model: its one Close frees everything opened on it).
type loaded = local.Model

// engineFor loads the model (once the files of the run were checked) and
// starts an engine with --parallel sequences; closing the model stops it.
func engineFor(c *cli.Context) (*loaded, *engine.Engine, error) {
	l, err := openModel(c)
	if err != nil {
		return nil, nil, err
	}
	eng, err := l.Engine(engine.Options{Parallel: c.Int("parallel")})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, eng, nil
}

// openModel loads MODEL with the shared flags and creates a context for
// --parallel sequences, attaching --lora when the command has it.
func openModel(c *cli.Context) (*loaded, error) { return openModelSeqs(c, 0) }

// openModelSeqs is openModel with extra sequences beyond --parallel (the
// engine's prefix cache uses one); --ctx then covers them too. It loads
// the GPU backends first when --gpu or --ngl ask for them, and words the
// errors in terms of the flags.
func openModelSeqs(c *cli.Context, extra int) (*loaded, error) {
	o, err := localOptions(c)
	if err != nil {
		return nil, err
	}
	if o.GPULayers != 0 {
		if err := loadGPUBackends(o.BackendDir); err != nil {
			return nil, err
		}
		if err := checkModelFitsGPU(o.Path, o.GPULayers); err != nil {
			return nil, err
		}
	}
	l, err := local.Open(o, extra, log)
	var fe *local.FileError
	switch {
	case errors.As(err, &fe):
		return nil, usageError{err}
	case errors.Is(err, llama.ErrKVCache):
		return nil, kvUsageError(c, err)
	case err != nil:
		return nil, err
	}
	return l, nil
}

func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// loadGPUBackends finds and loads the GPU backend libraries built by
// `make cuda`; without one, asking for offload is an error, not a silent
// CPU run.
func loadGPUBackends(dir string) error {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if exe, err := os.Executable(); err == nil {
			d := filepath.Dir(exe)
			candidates = append(candidates, filepath.Join(d, "lib", "codeplan"), filepath.Join(d, "..", "lib", "codeplan"))
		}
		candidates = append(candidates, filepath.Join("lib", "codeplan"))
	}
	var found []string
	for _, d := range candidates {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		found = append(found, d)
		if err := llama.LoadBackends(d); err == nil && llama.HasGPU() {
			for _, dev := range llama.Devices() {
				log.Info().Str("device", dev.Name).Str("kind", dev.Kind).Str("desc", dev.Description).
					Uint64("free_mib", dev.FreeBytes>>20).Msg("backend")
			}
			return nil
		}
	}
	if llama.HasGPU() { // Metal is built in on Apple Silicon
		return nil
	}
	if len(found) > 0 {
		return explainBackendDir(found[0])
	}
	return usagef("--gpu/--ngl: no GPU backend found in %v: build it with `make cuda` (or pass --backend-dir)", candidates)
}
