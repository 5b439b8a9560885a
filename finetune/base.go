package finetune

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"path/filepath"
	"sort"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// Targets are the per-layer matrices a LoRA adapter may adapt, named as in
// GGUF tensor names (blk.N.<target>.weight).
var Targets = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// trainableArchs are the architectures llama's Trainer builds a training
// graph for.
var trainableArchs = map[string]bool{"llama": true, "qwen2": true, "qwen3": true}

// backwardTypes are the weight types the training backward pass can use on
// the CPU: F32 directly, F16 and BF16 through a one-time F32 copy, and the
// quantized types ggml's CPU out_prod kernel dequantizes. (On a GPU every
// type but F32 is copied to F32 on the device.)
var backwardTypes = map[gguf.TensorType]bool{
	gguf.TensorF32: true, gguf.TensorF16: true, gguf.TensorBF16: true,
	gguf.TensorQ4_0: true, gguf.TensorQ4_1: true, gguf.TensorQ5_0: true, gguf.TensorQ5_1: true, gguf.TensorQ8_0: true,
	gguf.TensorQ2_K: true, gguf.TensorQ3_K: true, gguf.TensorQ4_K: true, gguf.TensorQ5_K: true, gguf.TensorQ6_K: true,
	gguf.TensorIQ2_XXS: true, gguf.TensorIQ2_XS: true, gguf.TensorIQ3_XXS: true, gguf.TensorIQ1_S: true,
	gguf.TensorIQ4_NL: true, gguf.TensorIQ3_S: true, gguf.TensorIQ2_S: true, gguf.TensorIQ4_XS: true,
	gguf.TensorIQ1_M: true, gguf.TensorTQ1_0: true, gguf.TensorTQ2_0: true, gguf.TensorMXFP4: true,
}

// mergeTypes are the base types Merge can fold an adapter into.
var mergeTypes = map[gguf.TensorType]bool{gguf.TensorF32: true, gguf.TensorF16: true, gguf.TensorBF16: true}

// Base describes a base model file, read from its GGUF header without
// loading the weights, so that unusable models are refused in seconds.
type Base struct {
	Path         string
	Architecture string
	Layers       int
	Embedding    int
	Vocab        int
	// Fingerprint identifies the model independently of its quantization:
	// a hash of the architecture, the sizes, every tensor's name and shape,
	// and the values of output_norm.weight (kept in F32 by every quantizer).
	// An adapter or checkpoint records it, and one made for another model is
	// refused.
	Fingerprint string
	// ContentFingerprint identifies the weights themselves: Fingerprint's
	// header part plus every tensor's type and FingerprintSample bytes from
	// the start, the middle and the end of its data, so that two models of
	// one shape with other weights differ (a LoRA merge leaves
	// output_norm, all that Fingerprint reads, unchanged). It begins with
	// the method (ContentFingerprintMethod + ":"), so that a value made
	// another way is never taken for a different model. Result files
	// (model_fingerprint) and checkpoints record it.
	ContentFingerprint string
	tensors            map[string]gguf.TensorInfo
}

// ContentFingerprintMethod names how ContentFingerprint is computed:
// "s3x4k" = 3 samples of 4 KiB per tensor; a change to the method gets a
// new name.
const ContentFingerprintMethod = "s3x4k"

// FingerprintSample is the size of each of the three samples per tensor.
const FingerprintSample = 4096

// InspectBase reads the header of the GGUF model at path.
func InspectBase(path string) (*Base, error) { return inspectBase(path, true) }

// inspectBase is InspectBase, optionally without the content fingerprint
// (for timing it).
func inspectBase(path string, content bool) (*Base, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	if arch == "" {
		return nil, fmt.Errorf("%s: no general.architecture in the GGUF header", path)
	}
	b := &Base{Path: path, Architecture: arch, tensors: map[string]gguf.TensorInfo{}}
	if v, ok := f.Uint32(arch + ".block_count"); ok {
		b.Layers = int(v)
	}
	if v, ok := f.Uint32(arch + ".embedding_length"); ok {
		b.Embedding = int(v)
	}
	if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		b.Vocab = len(toks)
	}
	infos := f.Tensors()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	h := sha256.New()
	fmt.Fprintf(h, "arch=%s layers=%d embd=%d vocab=%d\n", arch, b.Layers, b.Embedding, b.Vocab)
	for _, ti := range infos {
		b.tensors[ti.Name] = ti
		fmt.Fprintf(h, "%s %v\n", ti.Name, ti.Shape)
	}
	if ti, ok := b.tensors["output_norm.weight"]; ok && ti.Type == gguf.TensorF32 {
		data, err := f.TensorData(ti.Name)
		if err != nil {
			return nil, err
		}
		h.Write(data)
	}
	b.Fingerprint = hex.EncodeToString(h.Sum(nil)[:16])
	if !content {
		return b, nil
	}
	if b.ContentFingerprint, err = contentFingerprint(f, infos, h); err != nil {
		return nil, err
	}
	return b, nil
}

// contentFingerprint adds samples of every tensor's data to the header hash
// h (see Base.ContentFingerprint): about 12 KiB of reads per tensor, 3.5 MB
// for an 8B model, whatever its size.
func contentFingerprint(f *gguf.File, infos []gguf.TensorInfo, h hash.Hash) (string, error) {
	const n = FingerprintSample
	for _, ti := range infos {
		fmt.Fprintf(h, "%s %s %d\n", ti.Name, ti.Type, ti.Size)
		offs := []uint64{0}
		if ti.Size > n {
			offs = append(offs, (ti.Size-n)/2, ti.Size-n)
		}
		for _, off := range offs {
			data, err := f.TensorBytes(ti.Name, off, n)
			if err != nil {
				return "", err
			}
			h.Write(data)
		}
	}
	return ContentFingerprintMethod + ":" + hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// FileName is the base model's file name, recorded in adapters.
func (b *Base) FileName() string { return filepath.Base(b.Path) }

// Tensor returns the description of one base tensor.
func (b *Base) Tensor(name string) (gguf.TensorInfo, bool) {
	ti, ok := b.tensors[name]
	return ti, ok
}

// targetName is the GGUF name of target t in layer l.
func targetName(l int, t string) string { return fmt.Sprintf("blk.%d.%s.weight", l, t) }

// checkArchitecture refuses a model the trainer has no graph for: another
// architecture, no layers, or a mixture of experts. LoRA and full training
// share it.
func (b *Base) checkArchitecture() error {
	if !trainableArchs[b.Architecture] {
		return fmt.Errorf("%s: architecture %q cannot be trained here; supported: llama, qwen2, qwen3 (dense models)", b.Path, b.Architecture)
	}
	if b.Layers <= 0 {
		return fmt.Errorf("%s: %s.block_count missing", b.Path, b.Architecture)
	}
	if _, ok := b.tensors["blk.0.ffn_gate_inp.weight"]; ok {
		return fmt.Errorf("%s: mixture-of-experts models cannot be trained here", b.Path)
	}
	return nil
}

// CheckTrainable refuses, before any work, a base the trainer cannot use:
// another architecture, a missing target matrix, or a weight type the
// backward pass cannot read. merge adds the stricter types merging needs.
func (b *Base) CheckTrainable(targets []string, merge bool) error {
	if err := b.checkArchitecture(); err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("no LoRA targets given")
	}
	for _, t := range targets {
		if !isTarget(t) {
			return fmt.Errorf("unknown LoRA target %q (want some of %s)", t, strings.Join(Targets, ","))
		}
	}
	for name, ti := range b.tensors {
		if len(ti.Shape) < 2 || !strings.HasSuffix(name, ".weight") || name == "token_embd.weight" {
			continue
		}
		if !backwardTypes[ti.Type] {
			return fmt.Errorf("%s: tensor %s has type %s, which the training backward pass cannot use; convert the model to F16 or Q8_0", b.Path, name, ti.Type)
		}
	}
	for l := 0; l < b.Layers; l++ {
		for _, t := range targets {
			ti, ok := b.tensors[targetName(l, t)]
			if !ok {
				return fmt.Errorf("%s: LoRA target %s has no tensor %s", b.Path, t, targetName(l, t))
			}
			if len(ti.Shape) != 2 {
				return fmt.Errorf("%s: tensor %s has shape %v, want a matrix", b.Path, ti.Name, ti.Shape)
			}
			if merge && !mergeTypes[ti.Type] {
				return fmt.Errorf("%s: merging needs F32, F16 or BF16 target matrices, but %s is %s; merge into the unquantized model and quantize the result", b.Path, ti.Name, ti.Type)
			}
		}
	}
	return nil
}

func isTarget(t string) bool {
	for _, k := range Targets {
		if k == t {
			return true
		}
	}
	return false
}

// ParseTargets splits a comma-separated target list, rejecting unknown and
// repeated names.
func ParseTargets(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !isTarget(t) {
			return nil, fmt.Errorf("unknown LoRA target %q (want some of %s)", t, strings.Join(Targets, ","))
		}
		if seen[t] {
			return nil, fmt.Errorf("LoRA target %q listed twice", t)
		}
		seen[t] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no LoRA targets in %q", s)
	}
	return out, nil
}

// hashString is a 64-bit FNV-1a hash, used to derive per-tensor seeds.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// le is the byte order of GGUF data.
var le = binary.LittleEndian
