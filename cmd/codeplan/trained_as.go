package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/planner"
)

// Auto is the value of --mode, --modes and --format that defers to what
// the model was fine-tuned on.
const Auto = "auto"

// formatUsage is the --format help shared by every command that answers.
const formatUsage = "auto (what the adapter or fine-tuned model records, else prompted), " +
	"trained (the layout finetune teaches) or prompted (instructions for an instruct model never trained on it)"

// trainedAs reports the answer mode and format that codeplan finetune
// recorded in the adapter given with --lora or, without one, in the model
// itself (a finetune --full model), and which file said so. Files that
// record nothing (any model codeplan did not train) give "".
func trainedAs(c *cli.Context) (mode, format, file string) {
	file = ""
	if hasFlag(c, "lora") && c.String("lora") != "" {
		file = c.String("lora")
	} else if p, err := modelPath(c); err == nil {
		file = p
	}
	if file == "" {
		return "", "", ""
	}
	f, err := gguf.Open(file)
	if err != nil {
		return "", "", file // the loader reports unreadable files better
	}
	defer f.Close()
	mode, _ = f.String(finetune.KeyMode)
	format, _ = f.String(finetune.KeyFormat)
	return mode, format, file
}

// resolveMode reads a --mode value: auto takes the recorded training mode;
// an explicit mode that differs from the recorded one is used, with a
// warning, since answers in a mode the model never learned are rarely what
// was meant.
func resolveMode(c *cli.Context, value string) (planner.Mode, error) {
	trained, _, file := trainedAs(c)
	if value == Auto {
		if trained == "" {
			return "", usagef("--mode auto: %s records no training mode (only adapters and models from codeplan finetune do); give --mode direct, nlplan or codeplan", orModel(file))
		}
		return planner.ParseMode(trained)
	}
	m, err := planner.ParseMode(value)
	if err != nil {
		return "", usagef("--mode: %v", err)
	}
	if trained != "" && trained != string(m) {
		log.Warn().Str("mode", string(m)).Str("trained_mode", trained).Str("file", file).
			Msg("answering in a mode the model was not fine-tuned on (--mode auto uses the trained one)")
	}
	return m, nil
}

// resolveModes is resolveMode for eval's --modes list: auto is the one
// recorded mode; a list without the recorded mode gets a warning.
func resolveModes(c *cli.Context, value string) ([]planner.Mode, error) {
	if value == Auto {
		m, err := resolveMode(c, value)
		return []planner.Mode{m}, err
	}
	modes, err := planner.ParseModes(value)
	if err != nil {
		return nil, usagef("--modes: %v", err)
	}
	if trained, _, file := trainedAs(c); trained != "" {
		found := false
		for _, m := range modes {
			found = found || string(m) == trained
		}
		if !found {
			log.Warn().Str("modes", value).Str("trained_mode", trained).Str("file", file).
				Msg("none of the modes is the one the model was fine-tuned on")
		}
	}
	return modes, nil
}

// resolveFormat reads a --format value: auto (the default) is the recorded
// training format, else prompted, since a model codeplan did not train has
// never seen the trained layout; an explicit format that differs from the
// recorded one is used with a warning.
func resolveFormat(c *cli.Context, value string) (planner.Format, error) {
	_, trained, file := trainedAs(c)
	if value == Auto || value == "" {
		if trained != "" {
			return planner.ParseFormat(trained)
		}
		return planner.Prompted, nil
	}
	f, err := planner.ParseFormat(value)
	if err != nil {
		return "", usagef("--format: %v", err)
	}
	if trained != "" && trained != string(f) {
		log.Warn().Str("format", string(f)).Str("trained_format", trained).Str("file", file).
			Msg("using another format than the model was fine-tuned on (--format auto uses the trained one)")
	}
	return f, nil
}

func orModel(file string) string {
	if file == "" {
		return "the model"
	}
	return file
}
