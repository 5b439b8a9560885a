package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "print a GGUF model's or LoRA adapter's metadata",
		ArgsUsage: "MODEL.gguf|ADAPTER.gguf ...",
		Description: `For a model: architecture, size, context, vocabulary, chat template.
For a LoRA adapter (general.type = adapter), such as one written by
codeplan finetune: the base it was trained on (file and fingerprint),
rank, alpha, target matrices, and the training mode, format, steps and loss.

Several files are described one after the other (text blocks separated by a
blank line, or one JSON object each with --json).

   codeplan info model.gguf --json
   codeplan info plans-lora.gguf
   codeplan info base.gguf plans-lora.gguf`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `PATH`"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text"},
			&cli.BoolFlag{Name: "all", Usage: "print every metadata key"},
			&cli.BoolFlag{Name: "system", Usage: "also print llama.cpp's build, CPU features and compute devices (no MODEL needed)"},
			&cli.BoolFlag{Name: "gpu", Usage: "with --system: load the GPU backend and fail unless a GPU is listed"},
			&cli.StringFlag{Name: "backend-dir", EnvVars: []string{"CODEPLAN_BACKEND_DIR"}, Usage: "folder with GPU backend libraries (default: lib/codeplan next to or above the binary)"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("system") && c.String("model") == "" && c.Args().Len() == 0 {
				return printSystem(c)
			}
			paths := c.Args().Slice()
			if len(paths) == 0 {
				p, err := modelPath(c)
				if err != nil {
					return err
				}
				paths = []string{p}
			}
			for i, p := range paths {
				if p == tinyModelName {
					tp, err := tiny.DefaultPath()
					if err != nil {
						return err
					}
					p = tp
				}
				if i > 0 && !c.Bool("json") {
					fmt.Fprintln(stdout)
				}
				if err := printInfo(c, p); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// printInfo prints one model's or adapter's description.
func printInfo(c *cli.Context, path string) error {
	if isAdapterFile(path) {
		return printAdapterInfo(path, c.Bool("json"))
	}
	m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: false})
	if err != nil {
		return usageError{err}
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if !c.Bool("all") {
			info.Metadata = nil
		}
		return enc.Encode(info)
	}
	bos, err := m.BOS()
	if err != nil {
		return err
	}
	eos, err := m.EOS()
	if err != nil {
		return err
	}
	_, tmplErr := m.ApplyTemplate([]llama.ChatMessage{{Role: "user", Content: "x"}}, true)
	tmpl := "supported by llama.cpp"
	if tmplErr != nil {
		tmpl = "NOT supported: " + tmplErr.Error()
	}
	rows := [][2]string{
		{"file", info.Path},
		{"architecture", info.Architecture},
		{"name", info.Name},
		{"description", info.Description},
		{"parameters", humanCount(info.Params)},
		{"size", humanBytes(info.SizeBytes)},
		{"context length", fmt.Sprint(info.ContextLength)},
		{"layers", fmt.Sprint(info.Layers)},
		{"embedding", fmt.Sprint(info.EmbeddingLength)},
		{"heads (kv)", fmt.Sprintf("%d (%d)", info.Heads, info.HeadsKV)},
		{"vocabulary", fmt.Sprintf("%d tokens, %s", info.VocabSize, info.VocabType)},
		{"BOS / EOS", fmt.Sprintf("%d / %d", bos, eos)},
		{"chat template", tmpl},
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-15s %s\n", r[0]+":", r[1])
	}
	if c.Bool("all") {
		keys := make([]string, 0, len(info.Metadata))
		for k := range info.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(stdout, "metadata:")
		for _, k := range keys {
			v := info.Metadata[k]
			if len(v) > 120 {
				v = v[:117] + "..."
			}
			fmt.Fprintf(stdout, "  %-45s %s\n", k, strings.ReplaceAll(v, "\n", `\n`))
		}
	}
	if c.Bool("system") {
		fmt.Fprintf(stdout, "%-15s %s\n", "system:", llama.SystemInfo())
	}
	return nil
}

// printSystem prints llama.cpp's build and CPU features and the compute
// devices ggml sees; with --gpu it loads the GPU backend first and fails
// with the reason when no GPU is usable.
func printSystem(c *cli.Context) error {
	var gpuErr error
	if c.Bool("gpu") || c.IsSet("backend-dir") {
		gpuErr = loadGPUBackends(c.String("backend-dir"))
	}
	fmt.Fprintf(stdout, "%-15s %s\n", "system:", llama.SystemInfo())
	for _, d := range llama.Devices() {
		fmt.Fprintf(stdout, "%-15s %s (%s, %s): %s free of %s\n", "device:", d.Name, d.Kind, d.Description, humanBytes(d.FreeBytes), humanBytes(d.TotalBytes))
	}
	if c.Bool("gpu") {
		return gpuErr
	}
	return nil
}

// isAdapterFile reports whether path is a GGUF file whose general.type says
// adapter. Anything unreadable is left to the model loader, whose errors
// are more specific.
func isAdapterFile(path string) bool {
	f, err := gguf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	typ, _ := f.String("general.type")
	return typ == "adapter"
}

// printAdapterInfo prints what an adapter file records about its training.
func printAdapterInfo(path string, asJSON bool) error {
	a, err := finetune.ReadAdapterInfo(path)
	if err != nil {
		return usageError{err}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Path string `json:"path"`
			Type string `json:"type"`
			finetune.AdapterInfo
		}{path, "lora_adapter", a})
	}
	orUnknown := func(s string) string {
		if s == "" {
			return "(not recorded)"
		}
		return s
	}
	rows := [][2]string{
		{"file", path},
		{"type", "LoRA adapter"},
		{"architecture", a.Architecture},
		{"base file", orUnknown(a.BaseFile)},
		{"base fingerprint", orUnknown(a.BaseFingerprint)},
		{"rank", fmt.Sprint(a.Rank)},
		{"alpha", fmt.Sprint(a.Alpha)},
		{"targets", orUnknown(strings.Join(a.Targets, ", "))},
		{"trained mode", orUnknown(a.Mode)},
		{"trained format", orUnknown(a.Format)},
		{"task", taskName(a.Task)},
		{"steps", fmt.Sprintf("%d (%d epochs, %d tokens)", a.Steps, a.Epochs, a.Tokens)},
		{"data", orUnknown(a.Data)},
		{"loss", fmt.Sprintf("train %.4f, eval %.4f", a.TrainLoss, a.EvalLoss)},
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-17s %s\n", r[0]+":", r[1])
	}
	return nil
}

// taskName says what a model or adapter was trained to do.
func taskName(task string) string {
	if task == finetune.TaskExtract {
		return "plan extractor (use it with codeplan extract)"
	}
	return "answering (plan, then answer)"
}

func humanCount(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f B", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f K", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
