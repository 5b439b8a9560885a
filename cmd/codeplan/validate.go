package main

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/tokenizer"
)

// checkFlags validates, before anything is loaded, every model, sampling and
// LoRA flag the command has, so that a bad value is a usage error naming the
// flag (exit 2) instead of a C abort (NaN temperature), a silent default
// (--parallel 0) or a failure on every row. guardCommands installs it as
// every command's Before hook: one place, whatever the command.
func checkFlags(c *cli.Context) error {
	if err := checkRanges(c); err != nil {
		return err
	}
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
		// urfave/cli does not run a subcommand's Before (model init,
		// model random): check its flags as its action starts.
		for _, sub := range cmd.Subcommands {
			if act := sub.Action; act != nil {
				sub.Action = func(c *cli.Context) error {
					if err := checkFlags(c); err != nil {
						return err
					}
					return act(c)
				}
			}
		}
		guardCommands(cmd.Subcommands)
	}
}

// flagRange is the accepted range of a numeric flag, inclusive; minOpen
// makes the lower bound exclusive (a learning rate of 0 trains nothing).
// any marks flags whose whole type is valid (seeds) or that another check
// owns (sampling: llama.SamplerOptions.Validate; --lora-scale:
// llama.CheckAdapterScale; --parallel's upper bound: llama.MaxSequences).
type flagRange struct {
	min, max         float64
	minOpen, maxOpen bool
	any              bool
	note             string // what the special values mean, for the message
}

var noMax = math.Inf(1)

// flagRanges holds the range of every numeric flag of every command, by
// name, or by "COMMAND --name" where a command gives the name another
// meaning. checkRanges enforces it before anything is loaded, and
// TestNumericFlagRanges checks that every numeric flag has an entry and
// that a value just outside is refused naming the flag.
var flagRanges = map[string]flagRange{
	"parallel": {min: 1, max: noMax}, "batch": {min: 1, max: noMax}, "threads": {min: 1, max: noMax},
	"ctx": {min: 0, max: noMax, note: "0 = automatic"}, "ngl": {min: -1, max: noMax, note: "-1 = every layer"},
	"poll":            {min: -1, max: 100, note: "-1 = ggml's default"},
	"max-plan-tokens": {min: 1, max: noMax}, "max-tokens": {min: 1, max: noMax},
	"limit":       {min: 0, max: noMax, note: "0 = no limit"},
	"concurrency": {min: 1, max: noMax}, "retries": {min: 0, max: noMax},
	"max-connection-failures": {min: 0, max: noMax, note: "0 = never give up"},
	"min-gain":                {min: math.Inf(-1), max: noMax},
	"seed":                    {any: true},
	"temperature":             {any: true}, "top-p": {any: true}, "top-k": {any: true}, "min-p": {any: true}, "repeat-penalty": {any: true},
	"lora-scale":    {any: true},
	"min-words":     {min: -1, max: noMax, note: "0 or -1 = no minimum"},
	"max-words":     {min: -1, max: noMax, note: "0 or -1 = no limit"},
	"drain-timeout": {min: 0, max: noMax, note: "0 = wait for every row in flight"},
	"fewshot":       {min: 0, max: noMax}, "chunk": {min: 0, max: noMax, note: "0 = whole texts"},
	"n":    {min: 1, max: noMax},
	"port": {min: 0, max: 65535, note: "0 = any free port"}, "queue": {min: 0, max: noMax},
	"timeout": {min: 0, max: noMax}, "grace": {min: 0, max: noMax}, "body-timeout": {min: 0, max: noMax},
	"pp": {min: 1, max: noMax}, "tg": {min: 1, max: noMax},
	// finetune
	"lora-rank": {min: 1, max: 4096}, "lora-alpha": {min: 0, minOpen: true, max: noMax},
	"epochs": {min: 1, max: noMax}, "lr": {min: 0, minOpen: true, max: 1}, "warmup": {min: 0, max: noMax},
	"grad-accum": {min: 1, max: noMax}, "val-split": {min: 0, max: 1, maxOpen: true},
	"weight-decay": {min: 0, max: 1}, "max-grad-norm": {min: 0, max: noMax, note: "0 = no clipping"},
	"checkpoint-every": {min: 0, max: noMax, note: "0 = only when interrupted"},
	"eval-every":       {min: 0, max: noMax, note: "0 = about ten times per run"},
	"finetune --ctx":   {min: 8, max: noMax},
	"snapshots":        {min: 0, max: 100, note: "0 or 1 = none"},
	// tokenizer train, compare
	"tokenizer train --vocab": {min: float64(tokenizer.MinVocab), max: noMax, note: "the 256 bytes and 3 special tokens"},
	"compare --resamples":     {min: 100, max: noMax},
	// model init
	"model init --layers": {min: 1, max: noMax}, "model init --embd": {min: 1, max: noMax},
	"model init --heads": {min: 1, max: noMax}, "model init --kv-heads": {min: 1, max: noMax},
	"model init --ff": {min: 1, max: noMax}, "model init --ctx": {min: 1, max: noMax},
}

// rangeOf returns the range of flag name in command c.
func rangeOf(command, name string) (flagRange, bool) {
	if r, ok := flagRanges[command+" --"+name]; ok {
		return r, true
	}
	r, ok := flagRanges[name]
	return r, ok
}

// isNumericFlag reports whether f takes a number (or a duration).
func isNumericFlag(f cli.Flag) bool {
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag, *cli.Float64Flag, *cli.DurationFlag:
		return true
	}
	return false
}

// numericValue returns the value of a numeric flag, or false for other
// flags.
func numericValue(c *cli.Context, f cli.Flag) (float64, bool) {
	name := f.Names()[0]
	switch f.(type) {
	case *cli.IntFlag:
		return float64(c.Int(name)), true
	case *cli.Int64Flag:
		return float64(c.Int64(name)), true
	case *cli.UintFlag:
		return float64(c.Uint(name)), true
	case *cli.Uint64Flag:
		return float64(c.Uint64(name)), true
	case *cli.Float64Flag:
		return c.Float64(name), true
	case *cli.DurationFlag:
		return c.Duration(name).Seconds(), true
	}
	return 0, false
}

// checkRanges refuses a numeric flag given outside its range (flagRanges).
func checkRanges(c *cli.Context) error {
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		v, ok := numericValue(c, f)
		if !ok || !c.IsSet(name) {
			continue
		}
		r, ok := rangeOf(commandPath(c), name)
		if !ok || r.any {
			continue
		}
		below := v < r.min || (r.minOpen && v == r.min)
		above := v > r.max || (r.maxOpen && v == r.max)
		if below || above || math.IsNaN(v) || math.IsInf(v, 0) {
			return usagef("--%s must be %s, got %v", name, r.describe(), c.Value(name))
		}
	}
	return nil
}

// describe says the range in words.
func (r flagRange) describe() string {
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	var s string
	switch {
	case math.IsInf(r.min, -1):
		s = "a finite number"
	case math.IsInf(r.max, 1) && r.minOpen:
		s = "> " + num(r.min)
	case math.IsInf(r.max, 1):
		s = ">= " + num(r.min)
	default:
		lo, hi := "[", "]"
		if r.minOpen {
			lo = "("
		}
		if r.maxOpen {
			hi = ")"
		}
		s = "in " + lo + num(r.min) + ", " + num(r.max) + hi
	}
	if !r.minOpen && !r.maxOpen && !math.IsInf(r.max, 1) && !math.IsInf(r.min, -1) {
		s = "in " + num(r.min) + ".." + num(r.max)
	}
	if r.note != "" {
		s += " (" + r.note + ")"
	}
	return s
}
