package finetune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Checkpoint keys. A checkpoint is a GGUF file holding, for every adapter
// tensor, its values and both AdamW moments (suffixes ".adam_m", ".adam_v"),
// plus the step reached and the settings that must not change on resume.
const (
	keyCkptVersion  = "codeplan.ckpt.version"
	keyCkptStep     = "codeplan.ckpt.step"
	keyCkptSettings = "codeplan.ckpt.settings"
	keyCkptTokens   = "codeplan.ckpt.tokens"
	keyCkptSeconds  = "codeplan.ckpt.train_seconds"
	ckptVersion     = 1
)

// checkpoint is the state a run needs to continue exactly where it stopped:
// the data order is a function of the seed and the epoch, and nothing else
// is random, so values, moments and the step number are enough.
type checkpoint struct {
	step     int
	tokens   int64
	seconds  float64
	settings string // settings.String() of the run that wrote it
	base     string // base fingerprint
	values   map[string][]float32
	m, v     map[string][]float32
}

// saveCheckpoint writes the trainer's state atomically.
func saveCheckpoint(path string, tr *llama.Trainer, base *Base, set settings, step int, tokens int64, seconds float64) error {
	w := gguf.NewWriter()
	w.SetString("general.type", "codeplan-checkpoint")
	w.SetString("general.architecture", base.Architecture)
	w.SetUint32(keyCkptVersion, ckptVersion)
	w.SetUint32(keyCkptStep, uint32(step))
	w.SetString(keyCkptSettings, set.String())
	w.SetUint64(keyCkptTokens, uint64(tokens))
	w.SetFloat64(keyCkptSeconds, seconds)
	w.SetString(KeyBaseFile, base.FileName())
	w.SetString(KeyBaseFingerprint, base.Fingerprint)
	for i, tt := range tr.Tensors() {
		shape := make([]uint64, len(tt.Shape))
		for j, d := range tt.Shape {
			shape[j] = uint64(d)
		}
		for _, k := range []struct {
			kind   llama.TensorKind
			suffix string
		}{{llama.TensorValue, ""}, {llama.TensorAdamM, ".adam_m"}, {llama.TensorAdamV, ".adam_v"}} {
			vals, err := tr.Get(i, k.kind)
			if err != nil {
				return err
			}
			if err := w.AddF32(tt.Name+k.suffix, shape, vals); err != nil {
				return err
			}
		}
	}
	return w.WriteFile(path)
}

// loadCheckpoint reads a checkpoint written by saveCheckpoint.
func loadCheckpoint(path string) (*checkpoint, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if typ, _ := f.String("general.type"); typ != "codeplan-checkpoint" {
		return nil, fmt.Errorf("%s: not a codeplan checkpoint (general.type %q)", path, typ)
	}
	if v, _ := f.Uint32(keyCkptVersion); v != ckptVersion {
		return nil, fmt.Errorf("%s: checkpoint version %d, this codeplan reads version %d", path, v, ckptVersion)
	}
	c := &checkpoint{values: map[string][]float32{}, m: map[string][]float32{}, v: map[string][]float32{}}
	step, _ := f.Uint32(keyCkptStep)
	c.step = int(step)
	c.settings, _ = f.String(keyCkptSettings)
	c.base, _ = f.String(KeyBaseFingerprint)
	tokens, _ := f.Uint64(keyCkptTokens)
	c.tokens = int64(tokens)
	c.seconds, _ = f.Float64(keyCkptSeconds)
	for _, ti := range f.Tensors() {
		vals, err := f.TensorF32(ti.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasSuffix(ti.Name, ".adam_m"):
			c.m[strings.TrimSuffix(ti.Name, ".adam_m")] = vals
		case strings.HasSuffix(ti.Name, ".adam_v"):
			c.v[strings.TrimSuffix(ti.Name, ".adam_v")] = vals
		default:
			c.values[ti.Name] = vals
		}
	}
	return c, nil
}

// check refuses a checkpoint from another base or with other settings.
func (c *checkpoint) check(path string, base *Base, set settings) error {
	if c.base != base.Fingerprint {
		return fmt.Errorf("%s: %w: checkpoint was made with another base model (fingerprint %s), not %s (fingerprint %s)",
			path, ErrCheckpoint, c.base, base.FileName(), base.Fingerprint)
	}
	if c.settings != set.String() {
		return fmt.Errorf("%s: %w: checkpoint was made with other settings (%s); resume needs the same data and training flags",
			path, ErrCheckpoint, settingsDiff(c.settings, set.String()))
	}
	return nil
}

// settingsDiff lists the key=value fields that differ between two
// settings strings, as "lr 0.001 -> 0.002".
func settingsDiff(was, now string) string {
	old := map[string]string{}
	for _, f := range strings.Fields(was) {
		k, v, _ := strings.Cut(f, "=")
		old[k] = v
	}
	var diffs []string
	seen := map[string]bool{}
	for _, f := range strings.Fields(now) {
		k, v, _ := strings.Cut(f, "=")
		seen[k] = true
		if old[k] != v {
			what := k
			if k == "data" {
				what = "data (rows, their order or their tokens)"
			}
			diffs = append(diffs, fmt.Sprintf("%s %s -> %s", what, old[k], v))
		}
	}
	// a field only the checkpoint has (method=full, absent for LoRA)
	for _, f := range strings.Fields(was) {
		if k, v, _ := strings.Cut(f, "="); !seen[k] {
			diffs = append(diffs, fmt.Sprintf("%s %s -> (none)", k, v))
		}
	}
	if len(diffs) == 0 {
		return "unknown difference"
	}
	return strings.Join(diffs, ", ")
}

// ErrCheckpoint means the checkpoint cannot be resumed with this base or
// these settings.
var ErrCheckpoint = errors.New("checkpoint does not match")

// restore puts the checkpoint's values and moments into the trainer.
func (c *checkpoint) restore(path string, tr *llama.Trainer) error {
	for i, tt := range tr.Tensors() {
		for _, k := range []struct {
			kind llama.TensorKind
			src  map[string][]float32
		}{{llama.TensorValue, c.values}, {llama.TensorAdamM, c.m}, {llama.TensorAdamV, c.v}} {
			vals, ok := k.src[tt.Name]
			if !ok {
				return fmt.Errorf("%s: checkpoint has no data for %s", path, tt.Name)
			}
			if err := tr.Set(i, k.kind, vals); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return nil
}

// checkBase refuses a base that cannot be trained the way cfg asks.
func checkBase(cfg Config, b *Base) error {
	if cfg.Full {
		return b.CheckFullTrainable()
	}
	return b.CheckTrainable(cfg.Targets, cfg.Merge != "")
}

// fileExists reports whether path exists (errors other than "not found"
// count as existing, so that they surface when the file is used).
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// noCheckpoint explains a --resume without a checkpoint: after a finished
// run (the adapter is there and the checkpoint was removed) there is
// nothing left to resume.
func (c Config) noCheckpoint() error {
	ck := c.CheckpointPath()
	if fileExists(c.Out) {
		return fmt.Errorf("--resume: the run that writes %s has already finished (the adapter is there and no checkpoint %s is left), so there is nothing to resume; delete %s to train again, or choose another --out", c.Out, ck, c.Out)
	}
	return fmt.Errorf("--resume: no checkpoint at %s: start the run without --resume", ck)
}

// Preflight checks, before the model is loaded (which can take minutes),
// what can be checked from files alone: the base can be trained with cfg,
// the data file exists, and the checkpoint is there when resuming (and
// belongs to this base) and absent otherwise. Run repeats these checks and
// adds those that need the tokenizer.
func Preflight(cfg Config, b *Base) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkBase(cfg, b); err != nil {
		return err
	}
	if st, err := os.Stat(cfg.Data); err != nil {
		return fmt.Errorf("--data: %w", err)
	} else if st.IsDir() {
		return fmt.Errorf("--data %s is a directory", cfg.Data)
	}
	// The rows are read only after the model loads: check now that the
	// file decodes and has the fields asked for (a truncated gzip, a corrupt
	// Parquet file or a wrong --prompt-field cost nothing here).
	if _, err := dataset.Check(cfg.Data, cfg.Read); err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	// Everything the run writes is renamed into place at the end, hours
	// later: refuse a device or folder there now, not then.
	for _, p := range []string{cfg.Out, cfg.Merge, cfg.LogPath(), cfg.PlotPath(), cfg.CheckpointPath()} {
		if p != "" {
			if err := dataset.CheckTarget(p); err != nil {
				return err
			}
		}
	}
	if st, err := os.Stat(filepath.Dir(cfg.Out)); err != nil || !st.IsDir() {
		return fmt.Errorf("--out %s: directory %s does not exist", cfg.Out, filepath.Dir(cfg.Out))
	}
	if sameFile(cfg.Out, b.Path) {
		return fmt.Errorf("--out %s is the model being trained", cfg.Out)
	}
	if cfg.Merge != "" && sameFile(cfg.Merge, b.Path) {
		return fmt.Errorf("--merge %s is the base model itself", cfg.Merge)
	}
	ck := cfg.CheckpointPath()
	if !cfg.Resume {
		if fileExists(ck) {
			return fmt.Errorf("a checkpoint of an earlier run exists at %s: pass --resume to continue it, or delete it to start over", ck)
		}
		return nil
	}
	if !fileExists(ck) {
		return cfg.noCheckpoint()
	}
	f, err := gguf.Open(ck)
	if err != nil {
		return err
	}
	defer f.Close()
	if fp, _ := f.String(KeyBaseFingerprint); fp != b.Fingerprint {
		file, _ := f.String(KeyBaseFile)
		return fmt.Errorf("%s: %w: checkpoint was made with another base model (%s, fingerprint %s), not %s (fingerprint %s)",
			ck, ErrCheckpoint, file, fp, b.FileName(), b.Fingerprint)
	}
	return nil
}
