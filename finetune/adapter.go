package finetune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Metadata keys codeplan adds to the standard LoRA adapter keys
// (general.type=adapter, adapter.type=lora, adapter.lora.alpha).
const (
	KeyBaseFile        = "codeplan.base.file"
	KeyBaseFingerprint = "codeplan.base.fingerprint"
	KeyRank            = "codeplan.lora.rank"
	KeyTargets         = "codeplan.lora.targets"
	KeySteps           = "codeplan.train.steps"
	KeyEpochs          = "codeplan.train.epochs"
	KeyTokens          = "codeplan.train.tokens"
	KeyData            = "codeplan.train.data"
	KeyMode            = "codeplan.train.mode"
	KeyFormat          = "codeplan.train.format"
	// KeyTask is TaskExtract in extractors (Config.Extraction) and absent
	// in planners; KeyTemplate is then the extraction template's hash.
	KeyTask      = "codeplan.train.task"
	KeyTemplate  = "codeplan.train.template_hash"
	KeySeed      = "codeplan.train.seed"
	KeyTrainLoss = "codeplan.train.loss"
	KeyEvalLoss  = "codeplan.train.eval_loss"
)

// TaskExtract is the KeyTask value of a plan extractor.
const TaskExtract = "extract"

// AdapterInfo is what an adapter file says about itself. Fields other tools
// do not write stay zero (and are left out of JSON).
type AdapterInfo struct {
	Architecture    string   `json:"architecture"`
	Alpha           float32  `json:"alpha"`
	Rank            int      `json:"rank,omitempty"`
	Targets         []string `json:"targets,omitempty"`
	BaseFile        string   `json:"base_file,omitempty"`
	BaseFingerprint string   `json:"base_fingerprint,omitempty"`
	Mode            string   `json:"mode,omitempty"`   // the answer mode it was trained in (planner.Mode)
	Format          string   `json:"format,omitempty"` // the format it was trained in (planner.Format)
	Task            string   `json:"task,omitempty"`   // TaskExtract for a plan extractor, else empty
	Steps           int      `json:"steps,omitempty"`
	Epochs          int      `json:"epochs,omitempty"`
	Tokens          uint64   `json:"tokens,omitempty"` // training tokens seen
	Data            string   `json:"data,omitempty"`   // file name of the training data
	TrainLoss       float64  `json:"train_loss,omitempty"`
	EvalLoss        float64  `json:"eval_loss,omitempty"`
}

// adapterTensor is one LoRA matrix with its values.
type adapterTensor struct {
	Name   string   // blk.N.<target>.weight.lora_a / .lora_b
	Shape  []uint64 // ggml ne order
	Values []float32
}

// initialAdapter makes the starting point of training: for every target
// matrix W with ne {in, out}, A ({in, rank}) uniform in ±1/sqrt(in) (the
// Kaiming-uniform start common LoRA implementations use) and B ({rank, out})
// zero, so the adapter starts as the identity and only A's directions are
// random. Each tensor has its own stream derived from seed and its name.
func initialAdapter(b *Base, rank int, targets []string, seed uint64) ([]adapterTensor, error) {
	var out []adapterTensor
	for l := 0; l < b.Layers; l++ {
		for _, t := range targets {
			name := targetName(l, t)
			ti, ok := b.Tensor(name)
			if !ok || len(ti.Shape) != 2 {
				return nil, fmt.Errorf("%s: no matrix %s", b.Path, name)
			}
			in, outDim := ti.Shape[0], ti.Shape[1]
			r := rand.New(rand.NewPCG(seed, hashString(name)))
			bound := 1 / math.Sqrt(float64(in))
			a := make([]float32, in*uint64(rank))
			for i := range a {
				a[i] = float32((2*r.Float64() - 1) * bound)
			}
			out = append(out,
				adapterTensor{Name: name + ".lora_a", Shape: []uint64{in, uint64(rank)}, Values: a},
				adapterTensor{Name: name + ".lora_b", Shape: []uint64{uint64(rank), outDim}, Values: make([]float32, uint64(rank)*outDim)})
		}
	}
	return out, nil
}

// adapterMeta is the metadata written with an adapter.
type adapterMeta struct {
	base    *Base
	alpha   float32
	rank    int
	targets []string
	extra   func(w *gguf.Writer) // training statistics, when known
}

// writeAdapter writes tensors as a LoRA adapter GGUF that llama.cpp's
// llama_adapter_lora_init loads, atomically.
func writeAdapter(path string, meta adapterMeta, tensors []adapterTensor) error {
	w := gguf.NewLoRAWriter(meta.base.Architecture, strings.TrimSuffix(meta.base.FileName(), ".gguf")+"-codeplan-lora", meta.alpha)
	w.SetString(KeyBaseFile, meta.base.FileName())
	w.SetString(KeyBaseFingerprint, meta.base.Fingerprint)
	w.SetUint32(KeyRank, uint32(meta.rank))
	w.SetStrings(KeyTargets, meta.targets)
	if meta.extra != nil {
		meta.extra(w)
	}
	for _, t := range tensors {
		if err := w.AddF32(t.Name, t.Shape, t.Values); err != nil {
			return err
		}
	}
	return w.WriteFile(path)
}

// ReadAdapterInfo reads an adapter's metadata.
func ReadAdapterInfo(path string) (AdapterInfo, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return AdapterInfo{}, err
	}
	defer f.Close()
	var a AdapterInfo
	if typ, _ := f.String("general.type"); typ != "adapter" {
		return a, fmt.Errorf("%s: not a LoRA adapter (general.type %q)", path, typ)
	}
	a.Architecture, _ = f.String("general.architecture")
	a.Alpha, _ = f.Float32("adapter.lora.alpha")
	if v, ok := f.Uint32(KeyRank); ok {
		a.Rank = int(v)
	}
	a.Targets, _ = f.Strings(KeyTargets)
	a.BaseFile, _ = f.String(KeyBaseFile)
	a.BaseFingerprint, _ = f.String(KeyBaseFingerprint)
	if v, ok := f.Uint32(KeySteps); ok {
		a.Steps = int(v)
	}
	if v, ok := f.Uint32(KeyEpochs); ok {
		a.Epochs = int(v)
	}
	a.Tokens, _ = f.Uint64(KeyTokens)
	a.Mode, _ = f.String(KeyMode)
	a.Format, _ = f.String(KeyFormat)
	a.Task, _ = f.String(KeyTask)
	a.Data, _ = f.String(KeyData)
	if v, ok := f.Float64(KeyTrainLoss); ok {
		a.TrainLoss = v
	}
	if v, ok := f.Float64(KeyEvalLoss); ok {
		a.EvalLoss = v
	}
	return a, nil
}

// CheckAdapter refuses an adapter made for another base model: its recorded
// fingerprint must match b's. Adapters without a fingerprint (made by other
// tools) are accepted when the architecture matches; llama.cpp then still
// checks every tensor shape.
func CheckAdapter(path string, b *Base) (AdapterInfo, error) {
	a, err := ReadAdapterInfo(path)
	if err != nil {
		return a, err
	}
	if a.Architecture != b.Architecture {
		return a, fmt.Errorf("%s: adapter for architecture %q, base %s is %q", path, a.Architecture, b.FileName(), b.Architecture)
	}
	if a.BaseFingerprint != "" && a.BaseFingerprint != b.Fingerprint {
		return a, fmt.Errorf("%s: adapter was trained on another base (%s, fingerprint %s), not %s (fingerprint %s)",
			path, a.BaseFile, a.BaseFingerprint, b.FileName(), b.Fingerprint)
	}
	return a, nil
}

// withFrom applies Config.From: the adapter must be readable and made for
// base b, and its rank, alpha and targets become the run's (a different
// explicit value is a *ConfigError). Without From, c is returned as is.
func (c Config) withFrom(b *Base) (Config, error) {
	if c.From == "" {
		return c, nil
	}
	fromErr := func(err error) error { return &ConfigError{Field: "From", Value: c.From, Err: err} }
	if c.Full {
		return c, c.Validate()
	}
	if sameFile(c.Out, c.From) {
		return c, &ConfigError{Field: "Out", Value: c.Out, Err: fmt.Errorf("%s is the adapter being continued: write the continued adapter to another file", c.Out)}
	}
	info, err := CheckAdapter(c.From, b)
	if err != nil {
		return c, fromErr(err)
	}
	tensors, err := readAdapterTensors(c.From)
	if err != nil {
		return c, fromErr(err)
	}
	rank, targets := info.Rank, info.Targets
	if rank == 0 || len(targets) == 0 {
		rank, targets = adapterShape(tensors)
	}
	if rank == 0 || len(targets) == 0 {
		return c, fromErr(fmt.Errorf("no LoRA tensors for any of %s", strings.Join(Targets, ",")))
	}
	if c.Rank != 0 && c.Rank != rank {
		return c, &ConfigError{Field: "Rank", Value: c.Rank, Want: fmt.Sprintf("%d, the rank of the adapter being continued (or leave it unset)", rank)}
	}
	if c.Alpha != 0 && float32(c.Alpha) != info.Alpha {
		return c, &ConfigError{Field: "Alpha", Value: c.Alpha, Want: fmt.Sprintf("%g, the alpha of the adapter being continued (or leave it unset)", info.Alpha)}
	}
	if len(c.Targets) > 0 && strings.Join(c.Targets, ",") != strings.Join(targets, ",") {
		return c, &ConfigError{Field: "Targets", Value: strings.Join(c.Targets, ","), Want: strings.Join(targets, ",") + ", the targets of the adapter being continued (or leave it unset)"}
	}
	c.Rank, c.Alpha, c.Targets = rank, float64(info.Alpha), targets
	return c, nil
}

// adapterShape infers the rank and the adapted matrices from the tensors
// of an adapter that does not record them (one made by another tool).
func adapterShape(tensors []adapterTensor) (int, []string) {
	rank := 0
	seen := map[string]bool{}
	for _, t := range tensors {
		name, ok := strings.CutSuffix(t.Name, ".weight.lora_a")
		if !ok || len(t.Shape) != 2 {
			continue
		}
		rank = int(t.Shape[1])
		if i := strings.Index(name, "."); i >= 0 && strings.HasPrefix(name, "blk.") {
			if j := strings.Index(name[i+1:], "."); j >= 0 {
				seen[name[i+1+j+1:]] = true
			}
		}
	}
	var targets []string
	for _, t := range Targets {
		if seen[t] {
			targets = append(targets, t)
		}
	}
	return rank, targets
}

// continuedAdapter is the starting point of a run with Config.From: the
// tensors a fresh adapter of the same rank and targets would have, with the
// values read from the file (every tensor must be there, shaped alike).
func continuedAdapter(b *Base, cfg Config) ([]adapterTensor, error) {
	fresh, err := initialAdapter(b, cfg.Rank, cfg.Targets, cfg.Seed)
	if err != nil {
		return nil, err
	}
	file, err := readAdapterTensors(cfg.From)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]adapterTensor, len(file))
	for _, t := range file {
		byName[t.Name] = t
	}
	for i, t := range fresh {
		got, ok := byName[t.Name]
		if !ok {
			return nil, fmt.Errorf("%s: adapter has no tensor %s", cfg.From, t.Name)
		}
		if fmt.Sprint(got.Shape) != fmt.Sprint(t.Shape) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, want %v", cfg.From, t.Name, got.Shape, t.Shape)
		}
		fresh[i].Values = got.Values
	}
	return fresh, nil
}

// readAdapterTensors reads the LoRA tensors of an adapter file.
func readAdapterTensors(path string) ([]adapterTensor, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []adapterTensor
	for _, ti := range f.Tensors() {
		if !strings.HasSuffix(ti.Name, ".lora_a") && !strings.HasSuffix(ti.Name, ".lora_b") {
			continue
		}
		if ti.Type != gguf.TensorF32 && ti.Type != gguf.TensorF16 && ti.Type != gguf.TensorBF16 {
			return nil, fmt.Errorf("%s: tensor %s is %s; only F32, F16 and BF16 adapters can be read", path, ti.Name, ti.Type)
		}
		v, err := f.TensorF32(ti.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, adapterTensor{Name: ti.Name, Shape: append([]uint64(nil), ti.Shape...), Values: v})
	}
	return out, nil
}
