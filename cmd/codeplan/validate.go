package main

import (
	"errors"
	"math"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama"
)

// checkFlags validates, before anything is loaded, every model, sampling and
// LoRA flag the command has, so that a bad value is a usage error naming the
// flag (exit 2) instead of a C abort (NaN temperature), a silent default
// (--parallel 0) or a failure on every row. guardCommands installs it as
// every command's Before hook: one place, whatever the command.
func checkFlags(c *cli.Context) error {
	has := func(name string) bool { return hasFlag(c, name) }
	positive := []string{"parallel", "batch", "threads"}
	for _, name := range positive {
		if has(name) && c.Int(name) < 1 {
			return usagef("--%s must be at least 1, got %d", name, c.Int(name))
		}
	}
	if has("parallel") {
		if limit := llama.MaxSequences(); c.Int("parallel") > limit {
			return usagef("--parallel %d is more than llama.cpp's %d sequences", c.Int("parallel"), limit)
		}
	}
	if has("ctx") && c.Int("ctx") < 0 {
		return usagef("--ctx must be >= 0 (0 = automatic), got %d", c.Int("ctx"))
	}
	if has("ngl") && c.Int("ngl") < -1 {
		return usagef("--ngl must be >= -1 (-1 = all layers), got %d", c.Int("ngl"))
	}
	if has("poll") && (c.Int("poll") < -1 || c.Int("poll") > 100) {
		return usagef("--poll must be in -1..100, got %d", c.Int("poll"))
	}
	if has("cache-type") || has("flash-attn") {
		if err := checkKVFlags(c); err != nil {
			return err
		}
	}
	if has("lora-scale") {
		if err := llama.CheckAdapterScale(c.Float64("lora-scale")); err != nil {
			return usagef("--lora-scale: %v", err)
		}
	}
	if has("max-grad-norm") {
		if v := c.Float64("max-grad-norm"); !finite(v) || v < 0 {
			return usagef("--max-grad-norm must be a number >= 0 (0 = off), got %g", v)
		}
	}
	for _, name := range []string{"lora-alpha", "lr", "warmup", "val-split", "weight-decay"} {
		if has(name) && !finite(c.Float64(name)) {
			return usagef("--%s must be a finite number, got %g", name, c.Float64(name))
		}
	}
	return checkSamplingFlags(c)
}

// samplingFlagNames maps llama.SamplerOptions fields to the flags that set
// them, so that the library's SamplingError reads in the user's words.
var samplingFlagNames = map[string]string{
	"Temperature": "--temperature", "TopP": "--top-p", "TopK": "--top-k",
	"MinP": "--min-p", "RepeatPenalty": "--repeat-penalty",
}

// checkSamplingFlags runs the library's sampler validation on the sampling
// flags the command has.
func checkSamplingFlags(c *cli.Context) error {
	var o llama.SamplerOptions
	any := false
	set := func(name string, dst *float32) {
		if hasFlag(c, name) {
			*dst = float32(c.Float64(name))
			any = true
		}
	}
	set("temperature", &o.Temperature)
	set("top-p", &o.TopP)
	set("min-p", &o.MinP)
	set("repeat-penalty", &o.RepeatPenalty)
	if hasFlag(c, "top-k") {
		o.TopK = c.Int("top-k")
		any = true
	}
	if !any {
		return nil
	}
	if err := o.Validate(); err != nil {
		var se *llama.SamplingError
		if errors.As(err, &se) {
			name := samplingFlagNames[se.Option]
			if name == "" {
				name = se.Option
			}
			return usagef("%s must be %s, got %g", name, se.Want, se.Value)
		}
		return usageError{err}
	}
	return nil
}

// checkKVFlags checks --cache-type and --flash-attn against what ggml can
// run: known names, and a quantized cache (used for V too) only with flash
// attention. The head-size rule needs the model; openModel maps the
// library's ErrKVCache to these flags.
func checkKVFlags(c *cli.Context) error {
	fa := strings.ToLower(c.String("flash-attn"))
	switch fa {
	case "", "auto", "on", "off":
	default:
		return usagef("--flash-attn must be auto, on or off, got %q", c.String("flash-attn"))
	}
	ct := strings.ToLower(c.String("cache-type"))
	switch ct {
	case "", "f32", "f16", "bf16":
		return nil
	case "q8_0", "q4_0", "q4_1", "q5_0", "q5_1":
	default:
		return usagef("--cache-type must be one of f16, bf16, f32, q8_0, q4_0, q4_1, q5_0, q5_1; got %q", c.String("cache-type"))
	}
	gpu := c.Bool("gpu") || c.Int("ngl") != 0
	if fa == "off" || (fa == "" && !gpu) {
		return usagef("--cache-type %s quantizes the V cache too, which needs flash attention: add --flash-attn on (or use --cache-type f16)", ct)
	}
	return nil
}

// kvUsageError rewrites the library's ErrKVCache in the words of the flags
// that caused it.
func kvUsageError(c *cli.Context, err error) error {
	fa := c.String("flash-attn")
	if fa == "" {
		fa = "default"
	}
	return usagef("--cache-type %s with --flash-attn %s does not work on this model: %v", c.String("cache-type"), fa, err)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// guardCommands makes checkPositional, checkFlags and checkModelFiles run
// before every command and subcommand (after any Before hook the command
// has of its own), and makes a mistyped subcommand a usage error
// (unknownCommand).
func guardCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		own := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if own != nil {
				if err := own(c); err != nil {
					return err
				}
			}
			if a := c.Args().First(); (a == "help" || a == "h") && c.Args().Len() <= 2 {
				return nil // "codeplan extract help": urfave/cli shows the help next
			}
			if err := checkPositional(c); err != nil {
				return err
			}
			if err := checkFlags(c); err != nil {
				return err
			}
			return checkModelFiles(c)
		}
		if len(cmd.Subcommands) > 0 && cmd.Action == nil {
			cmd.Action = unknownCommand(func() []*cli.Command { return cmd.Subcommands }, cmd.Name)
		}
		guardCommands(cmd.Subcommands)
	}
}
