package finetune

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/lm"
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
	// keyCkptChecksum is a SHA-256 of every tensor's name and data, in
	// file order ("sha256:HEX"): resume verifies it, so that damaged bytes
	// are reported as a damaged file rather than trained on (they showed
	// up as "gradient norm is NaN" a few steps later). Checkpoints of
	// older versions have none and are read unverified.
	keyCkptChecksum = "codeplan.ckpt.checksum"
	keyCkptBaseData = "codeplan.base.content_fingerprint"
	ckptVersion     = 1
)

// ckptHash accumulates the checksum of a checkpoint's tensors.
type ckptHash struct{ h hash.Hash }

func newCkptHash() ckptHash { return ckptHash{sha256.New()} }

// add hashes one tensor: its name, then its data as stored (little-endian
// F32).
func (c ckptHash) add(name string, data []byte) {
	fmt.Fprintf(c.h, "%s\x00%d\x00", name, len(data))
	c.h.Write(data)
}

func (c ckptHash) addF32(name string, vals []float32) {
	buf := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	c.add(name, buf)
}

func (c ckptHash) sum() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }

// checkpoint is the state a run needs to continue exactly where it stopped:
// the data order is a function of the seed and the epoch, and nothing else
// is random, so values, moments and the step number are enough.
type checkpoint struct {
	step     int
	tokens   int64
	seconds  float64
	settings string // settings.String() of the run that wrote it
	base     string // base fingerprint
	baseData string // base content fingerprint ("" in older checkpoints)
	baseFile string // base file name, for messages
	values   map[string][]float32
	m, v     map[string][]float32
}

// saveCheckpoint writes the trainer's state atomically.
func saveCheckpoint(path string, tr lm.Trainer, base *Base, set settings, step int, tokens int64, seconds float64) error {
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
	w.SetString(keyCkptBaseData, base.ContentFingerprint)
	sum := newCkptHash()
	for i, tt := range tr.Tensors() {
		shape := make([]uint64, len(tt.Shape))
		for j, d := range tt.Shape {
			shape[j] = uint64(d)
		}
		for _, k := range []struct {
			kind   lm.TensorKind
			suffix string
		}{{lm.TensorValue, ""}, {lm.TensorAdamM, ".adam_m"}, {lm.TensorAdamV, ".adam_v"}} {
			vals, err := tr.Get(i, k.kind)
			if err != nil {
				return err
			}
			if err := w.AddF32(tt.Name+k.suffix, shape, vals); err != nil {
				return err
			}
			sum.addF32(tt.Name+k.suffix, vals)
		}
	}
	w.SetString(keyCkptChecksum, sum.sum())
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
	c.baseFile, _ = f.String(KeyBaseFile)
	tokens, _ := f.Uint64(keyCkptTokens)
	c.tokens = int64(tokens)
	c.seconds, _ = f.Float64(keyCkptSeconds)
	c.baseData, _ = f.String(keyCkptBaseData)
	want, verify := f.String(keyCkptChecksum)
	sum := newCkptHash()
	for _, ti := range f.Tensors() {
		if verify {
			data, err := f.TensorData(ti.Name)
			if err != nil {
				return nil, err
			}
			sum.add(ti.Name, data)
		}
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
	if got := sum.sum(); verify && got != want {
		return nil, fmt.Errorf("%s: %w: the checkpoint's data does not match its checksum (%s recorded, %s read): the file is damaged; delete it to start over, or restore it from a copy", path, ErrCheckpoint, want, got)
	}
	return c, nil
}

// check refuses a checkpoint from another base or with other settings.
func (c *checkpoint) check(path string, base *Base, set settings) error {
	if err := checkCheckpointBase(path, c.baseFile, c.base, base); err != nil {
		return err
	}
	if c.baseData != "" && c.baseData != base.ContentFingerprint {
		return fmt.Errorf("%s: %w: checkpoint was made with a base of the same shape but other weights (%s, %s), not %s (%s)",
			path, ErrCheckpoint, c.baseFile, c.baseData, base.FileName(), base.ContentFingerprint)
	}
	if c.settings != set.String() {
		return fmt.Errorf("%s: %w: checkpoint was made with other settings (%s); resume needs the same data and settings",
			path, ErrCheckpoint, settingsDiff(c.settings, set.String()))
	}
	return nil
}

// checkCheckpointBase refuses the checkpoint at path, made with the base
// file and fingerprint given, for another base than b. Preflight reads the
// two from the header; Run from the loaded checkpoint.
func checkCheckpointBase(path, file, fingerprint string, b *Base) error {
	if fingerprint != b.Fingerprint {
		return fmt.Errorf("%s: %w: checkpoint was made with another base model (%s, fingerprint %s), not %s (fingerprint %s)",
			path, ErrCheckpoint, file, fingerprint, b.FileName(), b.Fingerprint)
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

// restore puts the checkpoint's values and moments into the trainer.
func (c *checkpoint) restore(path string, tr lm.Trainer) error {
	for i, tt := range tr.Tensors() {
		for _, k := range []struct {
			kind lm.TensorKind
			src  map[string][]float32
		}{{lm.TensorValue, c.values}, {lm.TensorAdamM, c.m}, {lm.TensorAdamV, c.v}} {
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

// checkStart makes the checks that Preflight and Run share: the settings
// are valid, the base can be trained with them, no output is the base
// itself, and a checkpoint is there exactly when resuming.
func checkStart(cfg Config, b *Base) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkBase(cfg, b); err != nil {
		return err
	}
	if sameFile(cfg.Out, b.Path) {
		return &ConfigError{Field: "Out", Value: cfg.Out, Err: fmt.Errorf("%s is the model being trained", cfg.Out)}
	}
	if cfg.Merge != "" && sameFile(cfg.Merge, b.Path) {
		return &ConfigError{Field: "Merge", Value: cfg.Merge, Err: fmt.Errorf("%s is the base model itself", cfg.Merge)}
	}
	return cfg.checkCheckpointPresence()
}

// checkCheckpointPresence refuses to start over the checkpoint of an
// earlier run (ErrCheckpointExists), and to resume without one: after a
// finished run (the output is there and the checkpoint was removed) that is
// ErrNothingToResume, else ErrNoCheckpoint.
func (c Config) checkCheckpointPresence() error {
	ck := c.CheckpointPath()
	switch {
	case !c.Resume && fileExists(ck):
		return fmt.Errorf("%w at %s", ErrCheckpointExists, ck)
	case c.Resume && !fileExists(ck) && fileExists(c.Out):
		return fmt.Errorf("%w: %s is written and no checkpoint %s is left", ErrNothingToResume, c.Out, ck)
	case c.Resume && !fileExists(ck):
		return fmt.Errorf("%w at %s", ErrNoCheckpoint, ck)
	}
	return nil
}

// checkFiles checks the files the run reads and writes: the data file
// exists and decodes with the fields asked for, and every output can be
// written where it goes.
func (c Config) checkFiles() error {
	dataErr := func(err error) error { return &ConfigError{Field: "Data", Value: c.Data, Err: err} }
	if st, err := os.Stat(c.Data); err != nil {
		return dataErr(err)
	} else if st.IsDir() {
		return dataErr(fmt.Errorf("%s is a directory", c.Data))
	}
	// The rows are read only after the model loads: check now that the
	// file decodes and has the fields asked for (a truncated gzip, a corrupt
	// Parquet file or a wrong prompt field cost nothing here).
	if _, err := dataset.Check(c.Data, c.Read); err != nil {
		return dataErr(err)
	}
	// Everything the run writes is renamed into place at the end, hours
	// later: refuse a device or folder there now, not then. The log, plot,
	// checkpoint and snapshot paths derive from Out.
	targets := []struct{ field, path string }{
		{"Out", c.Out}, {"Merge", c.Merge}, {"Out", c.LogPath()}, {"Out", c.PlotPath()}, {"Out", c.CheckpointPath()},
	}
	if c.Full {
		for i := 1; i < c.Snapshots; i++ {
			targets = append(targets, struct{ field, path string }{"Out", c.SnapshotPath(100 * i / c.Snapshots)})
		}
	}
	for _, p := range targets {
		if p.path != "" {
			if err := dataset.CheckTarget(p.path); err != nil {
				return &ConfigError{Field: p.field, Value: p.path, Err: err}
			}
		}
	}
	if st, err := os.Stat(filepath.Dir(c.Out)); err != nil || !st.IsDir() {
		return &ConfigError{Field: "Out", Value: c.Out, Err: fmt.Errorf("directory %s does not exist", filepath.Dir(c.Out))}
	}
	return nil
}

// Preflight checks, before the model is loaded (which can take minutes),
// what can be checked from files alone: the settings, that the base can be
// trained with them, the data file, the output paths, and the checkpoint:
// there when resuming (and made with this base) and absent otherwise. Run
// repeats the checks that do not read the data (checkStart) and adds those
// that need the tokenizer.
func Preflight(cfg Config, b *Base) error {
	cfg, err := cfg.withFrom(b)
	if err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	if err := checkStart(cfg, b); err != nil {
		return err
	}
	if err := cfg.checkFiles(); err != nil {
		return err
	}
	if !cfg.Resume {
		return nil
	}
	ck := cfg.CheckpointPath()
	f, err := gguf.Open(ck)
	if err != nil {
		return err
	}
	defer f.Close()
	fp, _ := f.String(KeyBaseFingerprint)
	file, _ := f.String(KeyBaseFile)
	return checkCheckpointBase(ck, file, fp, b)
}
