package main

import (
	"errors"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// checkModelFiles checks, before anything loads, the files a command will
// hand to llama.cpp: the model (MODEL, --model, extract's --score-model)
// must be a GGUF model and not a LoRA adapter, and --lora must be a GGUF
// adapter of the same architecture. A missing adapter used to be found
// only after the model had loaded, and an adapter given as the model got
// llama.cpp's "key not found in model: llama.context_length".
func checkModelFiles(c *cli.Context) error {
	if c.Command == nil || c.Command.Name == "info" || !hasFlag(c, "model") {
		return nil // info describes adapters and models alike
	}
	if hasFlag(c, "backend") && c.String("backend") == "openai" {
		return nil // --model names a model on the server, not a file
	}
	model := c.String("model")
	if model == "" {
		model = c.Args().First()
	}
	arch := ""
	if model != "" && model != tinyModelName {
		a, err := checkModelFile(model, "MODEL")
		if err != nil {
			return err
		}
		arch = a
	}
	if hasFlag(c, "score-model") {
		if p := c.String("score-model"); p != "" && p != tinyModelName {
			if _, err := checkModelFile(p, "--score-model"); err != nil {
				return err
			}
		}
	}
	if !hasFlag(c, "lora") {
		return nil
	}
	p := c.String("lora")
	if p == "" || (c.Command.Name == "finetune" && (p == "true" || p == "false")) {
		return nil
	}
	return checkAdapterFile(p, model, arch)
}

// checkModelFile refuses a model path that is not a GGUF model; it returns
// the model's architecture.
func checkModelFile(path, what string) (string, error) {
	if err := llama.CheckGGUF(path); err != nil {
		if what == "MODEL" {
			return "", usageError{err}
		}
		return "", usagef("%s: %v", what, err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return "", usagef("%s %s: not a readable GGUF file: %v", what, path, err)
	}
	defer f.Close()
	if typ, _ := f.String("general.type"); typ == "adapter" {
		base, _ := f.String("codeplan.base.file")
		hint := "the base model it was trained on"
		if base != "" {
			hint = base + ", the base it was trained on,"
		}
		return "", usagef("%s %s is a LoRA adapter, not a model: pass %s as MODEL and this file as --lora %s", what, path, hint, path)
	}
	arch, _ := f.String("general.architecture")
	return arch, nil
}

// checkAdapterFile refuses a --lora path that is missing or not a GGUF
// LoRA adapter, or an adapter for another architecture than the model's
// (arch, when known).
func checkAdapterFile(path, model, arch string) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usagef("--lora %s: no such file", path)
		}
		return usagef("--lora %s: %v", path, err)
	}
	if err := llama.CheckGGUF(path); err != nil {
		return usagef("--lora %s", strings.TrimPrefix(err.Error(), "model "))
	}
	f, err := gguf.Open(path)
	if err != nil {
		return usagef("--lora %s: not a readable GGUF file: %v", path, err)
	}
	defer f.Close()
	if typ, _ := f.String("general.type"); typ != "adapter" {
		return usagef("--lora %s is not a LoRA adapter (general.type %q): a model goes in MODEL, an adapter from codeplan finetune in --lora", path, typ)
	}
	if a, _ := f.String("general.architecture"); arch != "" && a != "" && a != arch {
		return usagef("--lora %s is an adapter for architecture %q, but MODEL %s is %q", path, a, model, arch)
	}
	return nil
}
