package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/hf"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/safetensors"
)

// This file holds the commands that connect codeplan to Hugging Face's
// Python stack: `export` (rows for TRL, axolotl, LLaMA-Factory), `lora
// import|export` (PEFT adapters) and `model export-hf|logits`.

// badInput turns the errors of unreadable or unconvertible inputs into
// usage errors (exit 2); other errors (writing) stay runtime errors.
func badInput(err error) error {
	var pe *os.PathError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hf.ErrRefused), errors.Is(err, safetensors.ErrCorrupt), errors.Is(err, safetensors.ErrTruncated),
		errors.Is(err, gguf.ErrCorrupt), errors.Is(err, gguf.ErrTruncated), errors.Is(err, os.ErrNotExist),
		errors.As(err, &pe) && pe.Op == "open":
		return usageError{err}
	}
	return err
}

// outputFlags are --output (alias --out, -o) and --force.
func outputFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: what},
		&cli.BoolFlag{Name: "force", Usage: "replace --output if it exists"},
	}
}

// checkOutput refuses a missing --output, and an existing one without
// --force; dir says whether the output is a folder.
func checkOutput(c *cli.Context, dir bool) (string, error) {
	out := c.String("output")
	if out == "" {
		return "", usagef("%s: --output is required", c.Command.FullName())
	}
	st, err := os.Stat(out)
	if err != nil {
		return out, nil
	}
	switch {
	case dir && !st.IsDir():
		return "", usagef("%s: --output %s exists and is not a folder", c.Command.FullName(), out)
	case !dir && !st.Mode().IsRegular():
		return "", usagef("%s: --output %s is not a regular file", c.Command.FullName(), out)
	case dir:
		entries, _ := os.ReadDir(out)
		if len(entries) > 0 && !c.Bool("force") {
			return "", usagef("%s: --output %s is a folder that is not empty; pass --force to write into it", c.Command.FullName(), out)
		}
	case !c.Bool("force"):
		return "", usagef("%s: %s exists; pass --force to replace it", c.Command.FullName(), out)
	}
	return out, nil
}

// onePositional returns the command's single positional argument (or the
// value of the flag standing for it) and refuses any other.
func onePositional(c *cli.Context, flag, what string) (string, error) {
	v := ""
	if flag != "" {
		v = c.String(flag)
	}
	args := c.Args().Slice()
	if v == "" && len(args) > 0 {
		v, args = args[0], args[1:]
	}
	if len(args) > 0 {
		return "", usagef("%s: unexpected argument %q", c.Command.FullName(), args[0])
	}
	if v == "" {
		return "", usagef("%s: no %s given", c.Command.FullName(), what)
	}
	return v, nil
}

func loraCommand() *cli.Command {
	return &cli.Command{
		Name:  "lora",
		Usage: "convert LoRA adapters between GGUF and PEFT (Hugging Face) folders",
		Subcommands: []*cli.Command{{
			Name:      "import",
			Usage:     "turn a PEFT LoRA folder into a GGUF adapter for a base model",
			ArgsUsage: "PEFT_DIR",
			Description: `Reads adapter_config.json and adapter_model.safetensors (as PEFT's
save_pretrained writes them) and writes a GGUF LoRA that codeplan and llama.cpp
load, mapped as llama.cpp's convert_lora_to_gguf.py maps it: tensor names,
lora_A/lora_B to .lora_a/.lora_b, and for llama bases the q_proj/k_proj row
permutation. use_rslora is honoured (alpha becomes alpha*sqrt(r), the same
scale in llama.cpp's alpha/r). DoRA, other PEFT types, biases, unknown keys and
shapes that do not fit --base are refused with the reason.

   codeplan lora import ./peft-adapter --base model-f16.gguf --output adapter.gguf --mode codeplan`,
			Flags: append(outputFlags("GGUF adapter `PATH` to write"),
				&cli.StringFlag{Name: "base", Usage: "the base model GGUF `PATH` the adapter was trained on (shapes and head counts)"},
				&cli.StringFlag{Name: "mode", Usage: "record the answer mode it was trained in (direct, nlplan, codeplan), so --mode/--format auto work"},
				&cli.StringFlag{Name: "format", Usage: "with --mode: record the prompt format, trained (default) or prompted"},
				&cli.StringFlag{Name: "name", Usage: "general.name of the adapter (default: the folder's name)"},
			),
			Action: runLoRAImport,
		}, {
			Name:      "export",
			Usage:     "write a GGUF LoRA adapter as a PEFT folder (for peft, vLLM, transformers)",
			ArgsUsage: "ADAPTER.gguf",
			Description: `Writes adapter_config.json and adapter_model.safetensors. For a llama
adapter of q/k matrices --base is needed: the rows are permuted back by head.
The adapter's GGUF metadata travels in the safetensors header, so lora import
restores the same file bit for bit.

   codeplan lora export adapter.gguf --base model-f16.gguf --output ./peft-adapter`,
			Flags: append(outputFlags("PEFT folder `DIR` to write"),
				&cli.StringFlag{Name: "base", Usage: "the base model GGUF `PATH` (head counts for q/k; shapes are checked)"},
				&cli.StringFlag{Name: "base-model", Usage: "base_model_name_or_path to write into adapter_config.json (e.g. the folder of model export-hf)"},
			),
			Action: runLoRAExport,
		}},
	}
}

func runLoRAImport(c *cli.Context) error {
	dir, err := onePositional(c, "", "PEFT_DIR")
	if err != nil {
		return err
	}
	if c.String("base") == "" {
		return usagef("lora import: --base BASE.gguf is required (the adapter is checked against its shapes)")
	}
	out, err := checkOutput(c, false)
	if err != nil {
		return err
	}
	var set []gguf.KV
	if m := c.String("mode"); m != "" {
		mode, err := planner.ParseMode(m)
		if err != nil {
			return usagef("--mode: %v", err)
		}
		format := planner.Trained
		if c.IsSet("format") {
			if format, err = planner.ParseFormat(c.String("format")); err != nil {
				return usagef("--format: %v", err)
			}
		}
		set = append(set, gguf.KV{Key: finetune.KeyMode, Type: gguf.TypeString, Value: string(mode)},
			gguf.KV{Key: finetune.KeyFormat, Type: gguf.TypeString, Value: string(format)})
	} else if c.IsSet("format") {
		return usagef("lora import: --format is recorded with --mode; give both")
	}
	fb, err := finetune.InspectBase(c.String("base"))
	if err != nil {
		return usageError{err}
	}
	set = append(set, gguf.KV{Key: finetune.KeyBaseFile, Type: gguf.TypeString, Value: fb.FileName()},
		gguf.KV{Key: finetune.KeyBaseFingerprint, Type: gguf.TypeString, Value: fb.Fingerprint})
	base, err := hf.InspectBase(c.String("base"))
	if err != nil {
		return badInput(err)
	}
	defer base.Close()
	name := c.String("name")
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	w, info, err := hf.ImportLoRA(dir, base, hf.ImportOptions{Name: name, Set: set})
	if err != nil {
		return badInput(err)
	}
	if !info.Recorded {
		// Keys finetune writes, for codeplan info; an adapter that came
		// from lora export keeps its own.
		w.SetUint32(finetune.KeyRank, uint32(info.Rank))
		w.SetStrings(finetune.KeyTargets, info.Targets)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := w.WriteFile(out); err != nil {
		return err
	}
	log.Info().Str("output", out).Int("rank", info.Rank).Float32("alpha", info.Alpha).Bool("rslora", info.RSLoRA).
		Strs("targets", info.Targets).Int("tensors", info.Tensors).Int("qk_permuted", info.Permuted).
		Bool("restored_gguf_header", info.Recorded).Msg("adapter imported")
	fmt.Println(out)
	return nil
}

func runLoRAExport(c *cli.Context) error {
	adapter, err := onePositional(c, "", "ADAPTER.gguf")
	if err != nil {
		return err
	}
	out, err := checkOutput(c, true)
	if err != nil {
		return err
	}
	var base *hf.Base
	if p := c.String("base"); p != "" {
		if base, err = hf.InspectBase(p); err != nil {
			return badInput(err)
		}
		defer base.Close()
	}
	info, err := hf.ExportLoRA(adapter, base, out, hf.ExportOptions{BaseModel: c.String("base-model")})
	if err != nil {
		return badInput(err)
	}
	log.Info().Str("output", out).Int("rank", info.Rank).Float64("lora_alpha", info.Alpha).Strs("target_modules", info.Targets).
		Int("tensors", info.Tensors).Int("qk_permuted", info.Permuted).Msg("adapter exported")
	fmt.Println(out)
	return nil
}

func modelExportHFCommand() *cli.Command {
	return &cli.Command{
		Name:      "export-hf",
		Usage:     "write a llama-architecture GGUF model (F32/F16/BF16) as a transformers folder",
		ArgsUsage: "MODEL.gguf",
		Description: `Writes config.json and model.safetensors (LlamaForCausalLM; the q/k rows
permuted back to transformers' layout), and tokenizer.json with
tokenizer_config.json when the GGUF's vocabulary is a byte-level BPE with a
known pre-tokenizer (otherwise the log says why none was written). Quantized
models, RoPE scaling and other architectures are refused.

   codeplan model export-hf trained.gguf --output ./hf-model`,
		Flags: append(outputFlags("folder `DIR` to write"),
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `PATH` (or the first argument)"}),
		Action: func(c *cli.Context) error {
			path, err := onePositional(c, "model", "MODEL.gguf")
			if err != nil {
				return err
			}
			if path == tinyModelName {
				if path, err = modelPath(c); err != nil {
					return err
				}
			}
			out, err := checkOutput(c, true)
			if err != nil {
				return err
			}
			// Whether texts start with BOS is llama.cpp's decision for this
			// vocabulary; the exported tokenizer must do the same.
			var opts hf.ModelOptions
			if m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: true}); err == nil {
				if addBOS, err := m.AddBOS(); err == nil {
					opts.AddBOS = &addBOS
				}
				m.Close()
			}
			res, err := hf.ExportModel(path, out, opts)
			if err != nil {
				return badInput(err)
			}
			log.Info().Str("output", out).Int("tensors", res.Tensors).Str("dtype", res.Config.TorchDType).
				Int("layers", res.Config.NumHiddenLayers).Int("vocab", res.Config.VocabSize).Strs("files", res.Files).
				Msg(res.Tokenizer)
			fmt.Println(out)
			return nil
		},
	}
}

func modelLogitsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logits",
		Usage:     "print a prompt's tokens and the next-token logits (to compare with another implementation)",
		ArgsUsage: "MODEL.gguf",
		Description: `Tokenizes --prompt (or takes --tokens), decodes it and prints one JSON
object: {"tokens": [...], "logits": [...]} with the logits of the last position
(n_vocab floats). With --lora they include the adapter.

   codeplan model logits trained.gguf --lora adapter.gguf --prompt "Hello" > ours.json`,
		Flags: append(append(modelFlags(1), loraFlags()...),
			&cli.StringFlag{Name: "prompt", Usage: "text to tokenize (with the model's BOS when it adds one)"},
			&cli.StringFlag{Name: "tokens", Usage: "comma-separated token ids instead of --prompt"},
		),
		Action: runModelLogits,
	}
}

func runModelLogits(c *cli.Context) error {
	if c.NArg() > 1 || c.NArg() == 1 && c.String("model") != "" {
		return usagef("model logits: unexpected argument %q", c.Args().Get(c.NArg()-1))
	}
	if (c.String("prompt") == "") == (c.String("tokens") == "") {
		return usagef("model logits: give exactly one of --prompt and --tokens")
	}
	l, err := openModel(c)
	if err != nil {
		return err
	}
	defer l.Close()
	var toks []llama.Token
	if s := c.String("tokens"); s != "" {
		for _, f := range strings.Split(s, ",") {
			var id int32
			if _, err := fmt.Sscan(strings.TrimSpace(f), &id); err != nil {
				return usagef("--tokens: %q is not a token id", f)
			}
			toks = append(toks, llama.Token(id))
		}
	} else if toks, err = l.Model.Tokenize(c.String("prompt"), true, true); err != nil {
		return err
	}
	if len(toks) == 0 || len(toks) > l.Ctx.BatchSize() {
		return usagef("model logits: %d tokens; want 1 to --batch (%d)", len(toks), l.Ctx.BatchSize())
	}
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		return err
	}
	defer b.Close()
	for i, t := range toks {
		if _, err := b.Add(t, llama.Pos(i), 0, i == len(toks)-1); err != nil {
			return usageError{err}
		}
	}
	if err := l.Ctx.Decode(b); err != nil {
		return err
	}
	logits, err := l.Ctx.Logits(len(toks)-1, nil)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(struct {
		Tokens []llama.Token `json:"tokens"`
		Logits []float32     `json:"logits"`
	}{toks, logits})
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write training rows for other trainers (TRL, axolotl, LLaMA-Factory) in the trained layout",
		Description: `Reads rows as finetune does (extract or synth output) and writes one JSON
line per row whose assistant turn is byte for byte what codeplan finetune trains
on in the same --mode and --format:

   messages            {"id", "messages": [{"role", "content"}, ...]}   (OpenAI / TRL)
   sharegpt            {"id", "conversations": [{"from", "value"}, ...]}
   alpaca              {"id", "instruction", "input": "", "output"[, "system"]}
   prompt-completion   {"id", "prompt": [...], "completion": [...]}     (TRL: loss on the completion only)

The trainer's chat template adds its own end-of-turn marker, as finetune's does.
--val-split holds out the rows finetune --val-split would (same ids, same --seed)
into --val-output (default: OUTPUT with .val before the extension).

   codeplan export --input plans.jsonl --output train.jsonl --to messages --mode codeplan --val-split 0.05`,
		Flags: append(append(outputFlags("JSONL `PATH` to write (- = stdout)"),
			&cli.StringFlag{Name: "input", Aliases: []string{"data", "i"}, Usage: "rows `PATH` (JSONL, JSON, Parquet; - = stdin)"},
			&cli.StringFlag{Name: "to", Value: "messages", Usage: "layout: messages, sharegpt, alpaca or prompt-completion"},
			&cli.StringFlag{Name: "mode", Value: "codeplan", Usage: "the trained mode: codeplan, nlplan or direct"},
			&cli.StringFlag{Name: "format", Value: "trained", Usage: "prompt format: trained or prompted"},
			&cli.StringFlag{Name: "task", Value: "answer", Usage: "answer, or extract (rows for a plan extractor, as finetune --task extract)"},
			&cli.StringFlag{Name: "template", Usage: "with --task extract: paper (default), structured, or a `FILE`"},
			&cli.Float64Flag{Name: "val-split", Usage: "share of rows held out into --val-output, as finetune --val-split chooses them"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of the split (finetune's --seed)"},
			&cli.StringFlag{Name: "val-output", Usage: "JSONL `PATH` of the held-out rows"},
		), trainingRowFlags()...),
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("export: unexpected argument %q (the rows are --input)", c.Args().First())
	}
	in := c.String("input")
	if in == "" {
		return usagef("export: --input is required")
	}
	layout, err := finetune.ParseExportLayout(c.String("to"))
	if err != nil {
		return usagef("--to: %v", err)
	}
	mode, err := planner.ParseMode(c.String("mode"))
	if err != nil {
		return usagef("--mode: %v", err)
	}
	format, err := planner.ParseFormat(c.String("format"))
	if err != nil {
		return usagef("--format: %v", err)
	}
	var extraction *planner.Template
	switch c.String("task") {
	case "answer":
		if c.IsSet("template") {
			return usagef("--template applies to --task extract")
		}
	case "extract":
		if c.IsSet("mode") && mode != planner.Direct {
			return usagef("--task extract exports direct-mode rows (the plan is the whole target), not --mode %s", mode)
		}
		mode = planner.Direct
		if extraction, err = planner.TemplateFromFlag(c.String("template")); err != nil {
			return usagef("--template: %v", err)
		}
	default:
		return usagef("--task %q, want answer or extract", c.String("task"))
	}
	split := c.Float64("val-split")
	if split < 0 || split >= 1 || split != split {
		return usagef("--val-split %v: want a share in [0, 1)", split)
	}
	out := c.String("output")
	if out == "" {
		return usagef("export: --output is required (- for stdout)")
	}
	valOut := c.String("val-output")
	if split > 0 && valOut == "" {
		if out == "-" {
			return usagef("export: --val-split with --output - needs --val-output")
		}
		ext := filepath.Ext(out)
		valOut = strings.TrimSuffix(out, ext) + ".val" + ext
	}
	if split == 0 && valOut != "" {
		return usagef("export: --val-output needs --val-split")
	}
	if valOut != "" && valOut == out {
		return usagef("export: --val-output is --output (%s); give the held-out rows a file of their own", out)
	}
	for _, p := range []string{out, valOut} {
		if p == "" || p == "-" {
			continue
		}
		if p == in {
			return usagef("export: %s is both --input and an output", p)
		}
		if st, err := os.Stat(p); err == nil && !st.Mode().IsRegular() {
			return usagef("export: %s is not a regular file", p)
		}
	}
	if in != dataset.Stdin {
		if _, err := os.Stat(in); err != nil {
			return usageError{err}
		}
	}
	opts := finetune.ExportOptions{
		Read:      trainingReadOptions(c),
		PlanField: c.String("plan-field"), Mode: mode, Format: format, System: c.String("system"),
		Extraction: extraction, Layout: layout, ValSplit: split, Seed: c.Uint64("seed"),
		Warn: func(s string) { log.Warn().Msg(s) },
	}
	train, commitTrain, err := atomicOutput(out)
	if err != nil {
		return err
	}
	defer commitTrain(false)
	var val io.Writer
	commitVal := func(bool) error { return nil }
	if valOut != "" {
		if val, commitVal, err = atomicOutput(valOut); err != nil {
			return err
		}
		defer commitVal(false)
	}
	st, err := finetune.ExportRows(in, opts, train, val)
	if err != nil {
		var re *dataset.RowError
		if errors.As(err, &re) || errors.Is(err, finetune.ErrNoRows) {
			return usageError{err}
		}
		return err
	}
	if err := commitTrain(true); err != nil {
		return err
	}
	if err := commitVal(true); err != nil {
		return err
	}
	ev := log.Info().Str("layout", string(layout)).Str("mode", string(mode)).Str("format", string(format)).Str("output", out)
	if valOut != "" {
		ev = ev.Str("val_output", valOut)
	}
	ev.Msg(st.Summary())
	return nil
}

// atomicOutput opens a temporary file beside path (stdout for "-"); commit(true)
// renames it over path, commit(false) removes it. Nothing replaces path
// until the whole export succeeded.
func atomicOutput(path string) (io.Writer, func(ok bool) error, error) {
	if path == "-" {
		return os.Stdout, func(bool) error { return nil }, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, nil, err
	}
	done := false
	return tmp, func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			tmp.Close()
			return os.Remove(tmp.Name())
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return err
		}
		tmp.Chmod(0o644)
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return err
		}
		return os.Rename(tmp.Name(), path)
	}, nil
}
