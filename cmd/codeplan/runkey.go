package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/local"
)

// localOptions reads MODEL and the shared model flags (and --lora where the
// command has it) into local.Options.
func localOptions(c *cli.Context) (local.Options, error) {
	path, err := modelPath(c)
	if err != nil {
		return local.Options{}, err
	}
	ngl := c.Int("ngl")
	if c.Bool("gpu") {
		ngl = -1
	}
	o := local.Options{
		Path: path, GPULayers: ngl, BackendDir: c.String("backend-dir"), Threads: c.Int("threads"), Poll: c.Int("poll"),
		Ctx: c.Int("ctx"), Parallel: c.Int("parallel"), Batch: c.Int("batch"), FlashAttn: c.String("flash-attn"),
		CacheType: c.String("cache-type"), UnifiedKV: c.Bool("kv-unified"),
	}
	if hasFlag(c, "lora") {
		o.AdapterKeyed, o.LoRA, o.LoRAScale = true, c.String("lora"), c.Float64("lora-scale")
	}
	return o, nil
}

// modelKey names the model of a local run in the job's settings key
// (local.Options.Key); a bad model or adapter file is bad input.
func modelKey(c *cli.Context) (pipeline.ModelKey, local.Options, error) {
	o, err := localOptions(c)
	if err != nil {
		return pipeline.ModelKey{}, o, err
	}
	k, err := o.Key()
	if err != nil {
		return pipeline.ModelKey{}, o, usageError{err}
	}
	return k, o, nil
}
