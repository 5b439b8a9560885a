package hf

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/safetensors"
)

// File names inside a PEFT adapter folder.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// MetaGGUFHeader is the safetensors __metadata__ entry in which `lora
// export` keeps the adapter's GGUF metadata (a tensorless GGUF file, base64),
// so that `lora import` restores every key, in order and with its type: the
// round trip GGUF -> PEFT -> GGUF is then bit-identical. peft and vLLM
// ignore it.
const MetaGGUFHeader = "codeplan.gguf_header"

// ErrRefused marks an adapter or model that cannot be converted faithfully;
// the message says why. Callers treat it as bad input.
var ErrRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// Base is what a conversion needs to know about the base model.
type Base struct {
	Path         string
	Architecture string
	Layers       int
	Heads        int
	KVHeads      int
	file         *gguf.File
}

// InspectBase reads a base model's header. The file stays open for shape
// checks; Close it when done.
func InspectBase(path string) (*Base, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	b := &Base{Path: path, file: f}
	b.Architecture, _ = f.String("general.architecture")
	if typ, _ := f.String("general.type"); typ == "adapter" {
		f.Close()
		return nil, refuse("%s is a LoRA adapter, not a base model", path)
	}
	if _, ok := permutesQK[b.Architecture]; !ok {
		f.Close()
		return nil, refuse("%s: architecture %q is not supported (llama, qwen2, qwen3)", path, b.Architecture)
	}
	u := func(key string) int {
		v, _ := f.Uint32(b.Architecture + "." + key)
		return int(v)
	}
	b.Layers, b.Heads, b.KVHeads = u("block_count"), u("attention.head_count"), u("attention.head_count_kv")
	if b.KVHeads == 0 {
		b.KVHeads = b.Heads
	}
	if b.Layers <= 0 || b.Heads <= 0 {
		f.Close()
		return nil, refuse("%s: %s.block_count or %s.attention.head_count missing", path, b.Architecture, b.Architecture)
	}
	return b, nil
}

// Close closes the base file.
func (b *Base) Close() error { return b.file.Close() }

// headsFor is the head count whose rows a q/k weight groups, 0 when the
// tensor kind is not permuted for this architecture.
func (b *Base) headsFor(kind string) int {
	if !permutesQK[b.Architecture] {
		return 0
	}
	switch kind {
	case "attn_q":
		return b.Heads
	case "attn_k":
		return b.KVHeads
	}
	return 0
}

// matrix returns a base weight's ggml shape {in, out}.
func (b *Base) matrix(name string) (in, out uint64, err error) {
	ti, ok := b.file.Tensor(name)
	if !ok {
		return 0, 0, refuse("base %s has no tensor %s", filepath.Base(b.Path), name)
	}
	if len(ti.Shape) != 2 {
		return 0, 0, refuse("base tensor %s has shape %v, want a matrix", name, ti.Shape)
	}
	return ti.Shape[0], ti.Shape[1], nil
}

// PEFTConfig is the part of adapter_config.json codeplan writes and reads.
type PEFTConfig struct {
	PEFTType      string   `json:"peft_type"`
	TaskType      string   `json:"task_type"`
	BaseModel     string   `json:"base_model_name_or_path"`
	R             int      `json:"r"`
	LoRAAlpha     float64  `json:"lora_alpha"`
	TargetModules []string `json:"target_modules"`
	LoRADropout   float64  `json:"lora_dropout"`
	Bias          string   `json:"bias"`
	UseRSLoRA     bool     `json:"use_rslora"`
	UseDoRA       bool     `json:"use_dora"`
	FanInFanOut   bool     `json:"fan_in_fan_out"`
	ModulesToSave []string `json:"modules_to_save"`
	InitWeights   bool     `json:"init_lora_weights"`
	InferenceMode bool     `json:"inference_mode"`
}

// configKeys says, for every adapter_config.json key codeplan knows, whether
// any value is fine (informational, or only about initialisation and
// training) or which check applies. A key not listed here is refused unless
// its value is empty (null, false, 0, "", [] or {}): a setting codeplan does
// not understand is never silently ignored.
var configKeys = map[string]string{
	"peft_type": "check", "r": "check", "lora_alpha": "check", "target_modules": "check",
	"use_rslora": "check", "use_dora": "must-empty", "bias": "check", "fan_in_fan_out": "must-empty",
	"modules_to_save": "must-empty", "rank_pattern": "must-empty", "alpha_pattern": "must-empty",
	"layer_replication": "must-empty", "lora_bias": "must-empty", "trainable_token_indices": "must-empty",
	"target_parameters": "must-empty", "alora_invocation_tokens": "must-empty", "use_qalora": "must-empty",
	"megatron_config": "must-empty", "arrow_config": "must-empty",
	// Informational, or about initialisation and training only.
	"base_model_name_or_path": "any", "revision": "any", "task_type": "any", "inference_mode": "any",
	"lora_dropout": "any", "init_lora_weights": "any", "auto_mapping": "any", "peft_version": "any",
	"layers_to_transform": "any", "layers_pattern": "any", "loftq_config": "any", "eva_config": "any",
	"corda_config": "any", "exclude_modules": "any", "qalora_group_size": "any", "runtime_config": "any",
	"megatron_core": "any", "ensure_weight_tying": "any",
}

// isEmptyJSON reports whether raw is null, false, 0, "", [] or {}.
func isEmptyJSON(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "null", "false", "0", `""`, "[]", "{}", "0.0":
		return true
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil && len(m) == 0 {
		return true
	}
	var a []any
	return json.Unmarshal(raw, &a) == nil && len(a) == 0
}

// readConfig reads and checks adapter_config.json.
func readConfig(path string) (cfg PEFTConfig, targetsRegex string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, "", err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return cfg, "", refuse("%s: not a JSON object: %v", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch configKeys[k] {
		case "must-empty":
			if !isEmptyJSON(v) {
				return cfg, "", refuse("%s: %s = %s is not supported (%s)", path, k, compact(v), whyUnsupported(k))
			}
		case "":
			if !isEmptyJSON(v) {
				return cfg, "", refuse("%s: key %q = %s is unknown to codeplan; refusing rather than ignoring it", path, k, compact(v))
			}
		}
	}
	get := func(k string, dst any) error {
		v, ok := m[k]
		if !ok {
			return refuse("%s: %s is missing", path, k)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return refuse("%s: %s = %s: %v", path, k, compact(v), err)
		}
		return nil
	}
	if err := get("peft_type", &cfg.PEFTType); err != nil {
		return cfg, "", err
	}
	if cfg.PEFTType != "LORA" {
		return cfg, "", refuse("%s: peft_type %q; only LORA adapters can become GGUF LoRAs", path, cfg.PEFTType)
	}
	if err := get("r", &cfg.R); err != nil {
		return cfg, "", err
	}
	if cfg.R <= 0 {
		return cfg, "", refuse("%s: r = %d, want > 0", path, cfg.R)
	}
	if err := get("lora_alpha", &cfg.LoRAAlpha); err != nil {
		return cfg, "", err
	}
	if math.IsNaN(cfg.LoRAAlpha) || math.IsInf(cfg.LoRAAlpha, 0) || cfg.LoRAAlpha > math.MaxFloat32 || cfg.LoRAAlpha < -math.MaxFloat32 {
		return cfg, "", refuse("%s: lora_alpha %v is not a finite float32", path, cfg.LoRAAlpha)
	}
	if v, ok := m["use_rslora"]; ok {
		if err := json.Unmarshal(v, &cfg.UseRSLoRA); err != nil {
			return cfg, "", refuse("%s: use_rslora = %s, want true or false", path, compact(v))
		}
	}
	if v, ok := m["bias"]; ok && !isEmptyJSON(v) {
		if err := json.Unmarshal(v, &cfg.Bias); err != nil || cfg.Bias != "none" {
			return cfg, "", refuse("%s: bias = %s; a GGUF LoRA has no bias terms (want \"none\")", path, compact(v))
		}
	}
	if v, ok := m["init_lora_weights"]; ok {
		var how string
		if json.Unmarshal(v, &how) == nil {
			switch l := strings.ToLower(how); {
			case strings.HasPrefix(l, "pissa"), strings.HasPrefix(l, "olora"), strings.HasPrefix(l, "corda"), l == "loftq":
				return cfg, "", refuse("%s: init_lora_weights = %q changes the base weights at initialisation, so this adapter only fits that modified base; "+
					"save it converted to a plain LoRA (PEFT's path_initial_model_for_weight_conversion) first", path, how)
			}
		}
	}
	if v, ok := m["target_modules"]; ok && !isEmptyJSON(v) {
		if json.Unmarshal(v, &cfg.TargetModules) != nil {
			if err := json.Unmarshal(v, &targetsRegex); err != nil {
				return cfg, "", refuse("%s: target_modules = %s, want a list of names or a regular expression", path, compact(v))
			}
		}
	}
	if v, ok := m["base_model_name_or_path"]; ok {
		json.Unmarshal(v, &cfg.BaseModel)
	}
	return cfg, targetsRegex, nil
}

func whyUnsupported(key string) string {
	switch key {
	case "use_dora":
		return "DoRA's magnitude vectors have no GGUF LoRA form"
	case "fan_in_fan_out":
		return "Conv1D-style transposed weights are not llama/qwen projections"
	case "modules_to_save":
		return "fully trained modules cannot be stored in a GGUF LoRA"
	case "rank_pattern", "alpha_pattern":
		return "a GGUF LoRA has one alpha for every tensor"
	case "lora_bias", "layer_replication", "trainable_token_indices", "target_parameters", "alora_invocation_tokens", "use_qalora":
		return "llama.cpp's LoRA has no such feature"
	}
	return "not supported by codeplan"
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	s := b.String()
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// A PEFT tensor key: base_model.model.<module>.lora_A.weight.
var peftKey = regexp.MustCompile(`^base_model\.model\.(.+)\.lora_([AB])\.weight$`)

// ImportOptions adjust `lora import`.
type ImportOptions struct {
	// Name is general.name of the adapter (when no recorded header is kept).
	Name string
	// Set are metadata entries to add or replace (mode and format records,
	// the base's file and fingerprint).
	Set []gguf.KV
}

// Imported describes an imported adapter.
type Imported struct {
	Rank      int
	Alpha     float32 // adapter.lora.alpha as written
	RSLoRA    bool    // alpha was rescaled for use_rslora
	Targets   []string
	Tensors   int
	Recorded  bool // the GGUF header came from `lora export`'s record
	Permuted  int  // B matrices whose rows were permuted (q/k of llama)
	BaseModel string
}

// ImportLoRA converts a PEFT adapter folder into a GGUF LoRA for base and
// returns the writer (call WriteFile). Every tensor is checked against the
// base's shapes; unknown keys, other PEFT types, DoRA, biases and shape
// mismatches are refused (ErrRefused) with the reason.
func ImportLoRA(dir string, base *Base, opts ImportOptions) (*gguf.Writer, Imported, error) {
	var info Imported
	if st, err := os.Stat(dir); err != nil {
		return nil, info, err
	} else if !st.IsDir() {
		return nil, info, refuse("%s is not a folder (want a PEFT adapter folder with %s and %s)", dir, AdapterConfigFile, AdapterWeightsFile)
	}
	cfgPath := filepath.Join(dir, AdapterConfigFile)
	cfg, targetsRegex, err := readConfig(cfgPath)
	if err != nil {
		return nil, info, err
	}
	info.BaseModel = cfg.BaseModel
	var targetRE *regexp.Regexp
	if targetsRegex == "all-linear" {
		targetsRegex = "" // every linear layer: any projection codeplan maps
	}
	if targetsRegex != "" {
		if targetRE, err = regexp.Compile("^(?:" + targetsRegex + ")$"); err != nil {
			return nil, info, refuse("%s: target_modules regular expression %q: %v", cfgPath, targetsRegex, err)
		}
	}
	wPath := filepath.Join(dir, AdapterWeightsFile)
	st, err := safetensors.Open(wPath)
	if err != nil {
		if os.IsNotExist(err) {
			if _, binErr := os.Stat(filepath.Join(dir, "adapter_model.bin")); binErr == nil {
				return nil, info, refuse("%s: only adapter_model.bin (pickle) is there; save the adapter with safe_serialization=True", dir)
			}
		}
		return nil, info, err
	}
	defer st.Close()

	type pair struct {
		a, b   *safetensors.TensorInfo
		module string
		first  int // position in the file, to keep its order
	}
	pairs := map[string]*pair{}
	for i := range st.Tensors {
		t := &st.Tensors[i]
		m := peftKey.FindStringSubmatch(t.Name)
		if m == nil {
			return nil, info, refuse("%s: tensor %q is not a LoRA A/B weight (%s)", wPath, t.Name, unknownKeyHint(t.Name))
		}
		p := pairs[m[1]]
		if p == nil {
			p = &pair{module: m[1], first: i}
			pairs[m[1]] = p
		}
		if m[2] == "A" {
			p.a = t
		} else {
			p.b = t
		}
	}
	if len(pairs) == 0 {
		return nil, info, refuse("%s holds no LoRA tensors", wPath)
	}
	ordered := make([]*pair, 0, len(pairs))
	for _, p := range pairs {
		ordered = append(ordered, p)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].first < ordered[j].first })

	alpha := float32(cfg.LoRAAlpha)
	if cfg.UseRSLoRA {
		// rsLoRA scales by alpha/sqrt(r); llama.cpp scales by alpha/r, so
		// the same update needs alpha·sqrt(r).
		alpha = float32(cfg.LoRAAlpha * math.Sqrt(float64(cfg.R)))
		info.RSLoRA = true
	}
	info.Rank = cfg.R

	type outTensor struct {
		name  string
		typ   gguf.TensorType
		shape []uint64
		data  []byte
	}
	var tensors []outTensor
	targetSet := map[string]bool{}
	for _, p := range ordered {
		if p.a == nil || p.b == nil {
			return nil, info, refuse("%s: %s has only one of lora_A and lora_B", wPath, p.module)
		}
		name, layer, kind, ok := hfToGGUF(p.module)
		if !ok {
			return nil, info, refuse("%s: module %s is not a projection codeplan can map to GGUF (q/k/v/o_proj, gate/up/down_proj, lm_head)", wPath, p.module)
		}
		if layer >= base.Layers {
			return nil, info, refuse("%s: %s is layer %d, but the base has %d layers", wPath, p.module, layer, base.Layers)
		}
		if cfg.TargetModules != nil && !listed(cfg.TargetModules, p.module) {
			return nil, info, refuse("%s: %s has LoRA weights but %s's target_modules %v does not name it", wPath, p.module, AdapterConfigFile, cfg.TargetModules)
		}
		if targetRE != nil && !targetRE.MatchString(p.module) && !targetRE.MatchString(shortName(p.module)) {
			return nil, info, refuse("%s: %s has LoRA weights but target_modules %q does not match it", wPath, p.module, targetsRegex)
		}
		in, out, err := base.matrix(name)
		if err != nil {
			return nil, info, err
		}
		a, b := *p.a, *p.b
		if a.DType != b.DType {
			return nil, info, refuse("%s: %s's lora_A is %s but lora_B is %s", wPath, p.module, a.DType, b.DType)
		}
		typ, ok := ggufType(a.DType)
		if !ok {
			return nil, info, refuse("%s: %s is %s; only F32, F16 and BF16 adapters can be converted", wPath, a.Name, a.DType)
		}
		if len(a.Shape) != 2 || len(b.Shape) != 2 {
			return nil, info, refuse("%s: %s: lora_A %v and lora_B %v must be matrices", wPath, p.module, a.Shape, b.Shape)
		}
		if a.Shape[1] != in || b.Shape[0] != out {
			return nil, info, refuse("%s: %s: lora_A %v and lora_B %v do not fit the base's %s ([%d, %d] in PyTorch order)", wPath, p.module, a.Shape, b.Shape, name, out, in)
		}
		if a.Shape[0] != b.Shape[1] {
			return nil, info, refuse("%s: %s: lora_A has rank %d but lora_B %d", wPath, p.module, a.Shape[0], b.Shape[1])
		}
		if int(a.Shape[0]) != cfg.R {
			return nil, info, refuse("%s: %s has rank %d, but %s says r = %d", wPath, p.module, a.Shape[0], AdapterConfigFile, cfg.R)
		}
		ad, err := st.Data(a.Name)
		if err != nil {
			return nil, info, err
		}
		bd, err := st.Data(b.Name)
		if err != nil {
			return nil, info, err
		}
		if heads := base.headsFor(kind); heads > 0 {
			if bd, err = permuteRows(bd, int(out), int(b.Shape[1])*a.DType.Size(), heads, true); err != nil {
				return nil, info, refuse("%s: %s: %v", wPath, b.Name, err)
			}
			info.Permuted++
		}
		r := a.Shape[0]
		tensors = append(tensors,
			outTensor{name + ".lora_a", typ, []uint64{in, r}, ad},
			outTensor{name + ".lora_b", typ, []uint64{r, out}, bd})
		targetSet[kind] = true
	}
	for k := range targetSet {
		info.Targets = append(info.Targets, k)
	}
	sort.Strings(info.Targets)
	info.Tensors = len(tensors)
	info.Alpha = alpha

	w := gguf.NewLoRAWriter(base.Architecture, opts.Name, alpha)
	if rec, ok := st.Metadata[MetaGGUFHeader]; ok {
		if rw, ra, err := recordedHeader(rec, base.Architecture, alpha, cfg.R); err == nil {
			w, info.Recorded, info.Alpha = rw, true, ra
		}
	}
	for _, kv := range opts.Set {
		w.SetKV(kv)
	}
	for _, t := range tensors {
		if err := w.AddTensor(t.name, t.typ, t.shape, t.data); err != nil {
			return nil, info, err
		}
	}
	return w, info, nil
}

// recordedHeader rebuilds the writer from the GGUF header `lora export`
// recorded, when it still describes this adapter: same architecture and an
// alpha that gives the same scale.
func recordedHeader(rec, arch string, alpha float32, rank int) (*gguf.Writer, float32, error) {
	raw, err := base64.StdEncoding.DecodeString(rec)
	if err != nil {
		return nil, 0, err
	}
	f, err := gguf.Read(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, 0, err
	}
	if a, _ := f.String("general.architecture"); a != arch {
		return nil, 0, fmt.Errorf("recorded architecture %q", a)
	}
	ra, ok := f.Float32(gguf.KeyAdapterAlpha)
	if !ok || (ra != alpha && !(ra == 0 && alpha == float32(rank))) {
		return nil, 0, fmt.Errorf("recorded alpha %v, adapter_config.json gives %v", ra, alpha)
	}
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		w.SetKV(kv)
	}
	return w, ra, nil
}

// listed reports whether PEFT's target_modules list names module: an entry
// equal to the module path or to its last parts.
func listed(targets []string, module string) bool {
	for _, t := range targets {
		if t == module || strings.HasSuffix(module, "."+t) {
			return true
		}
	}
	return false
}

func unknownKeyHint(name string) string {
	switch {
	case strings.Contains(name, "lora_magnitude_vector"):
		return "a DoRA magnitude vector: DoRA adapters have no GGUF LoRA form"
	case strings.Contains(name, "lora_embedding_"):
		return "an embedding LoRA, which codeplan does not convert"
	case strings.HasSuffix(name, ".bias"):
		return "a LoRA bias, which a GGUF LoRA cannot hold"
	case strings.Contains(name, ".lora_A.") || strings.Contains(name, ".lora_B."):
		return "a LoRA weight saved with an adapter name or another prefix; PEFT saves base_model.model.<module>.lora_A.weight"
	}
	return "unknown key"
}

func ggufType(d safetensors.DType) (gguf.TensorType, bool) {
	switch d {
	case safetensors.F32:
		return gguf.TensorF32, true
	case safetensors.F16:
		return gguf.TensorF16, true
	case safetensors.BF16:
		return gguf.TensorBF16, true
	}
	return 0, false
}

func stType(t gguf.TensorType) (safetensors.DType, bool) {
	switch t {
	case gguf.TensorF32:
		return safetensors.F32, true
	case gguf.TensorF16:
		return safetensors.F16, true
	case gguf.TensorBF16:
		return safetensors.BF16, true
	}
	return "", false
}

// ExportOptions adjust `lora export`.
type ExportOptions struct {
	// BaseModel is written to base_model_name_or_path (e.g. the folder
	// `model export-hf` wrote).
	BaseModel string
}

// Exported describes an exported adapter.
type Exported struct {
	Rank     int
	Alpha    float64 // lora_alpha written
	Targets  []string
	Tensors  int
	Permuted int
}

// ExportLoRA writes the GGUF LoRA at adapterPath as a PEFT adapter folder
// dir (created if needed). base supplies the head counts the q/k row
// permutation needs and the shapes to check; it may be nil only when no
// tensor needs permuting.
func ExportLoRA(adapterPath string, base *Base, dir string, opts ExportOptions) (Exported, error) {
	var info Exported
	f, err := gguf.Open(adapterPath)
	if err != nil {
		return info, err
	}
	defer f.Close()
	if typ, _ := f.String(gguf.KeyGeneralType); typ != "adapter" {
		return info, refuse("%s is not a LoRA adapter (general.type %q)", adapterPath, typ)
	}
	if typ, _ := f.String(gguf.KeyAdapterType); typ != "lora" {
		return info, refuse("%s: adapter.type %q, want lora", adapterPath, typ)
	}
	arch, _ := f.String("general.architecture")
	if _, ok := permutesQK[arch]; !ok {
		return info, refuse("%s: architecture %q is not supported (llama, qwen2, qwen3)", adapterPath, arch)
	}
	if base != nil && base.Architecture != arch {
		return info, refuse("%s is a %s adapter, but the base %s is %s", adapterPath, arch, base.Path, base.Architecture)
	}
	alpha, _ := f.Float32(gguf.KeyAdapterAlpha)

	w := safetensors.NewWriter()
	w.SetMetadata("format", "pt")
	targets := map[string]bool{}
	rank := 0
	// Pairs by name, in the order their first member appears (llama.cpp's
	// converter and finetune write each .lora_a right before its .lora_b).
	type pair struct{ a, b *gguf.TensorInfo }
	pairs := map[string]*pair{}
	var order []string
	tensors := f.Tensors()
	for i := range tensors {
		t := &tensors[i]
		weight, isA := strings.CutSuffix(t.Name, ".lora_a")
		if !isA {
			var isB bool
			if weight, isB = strings.CutSuffix(t.Name, ".lora_b"); !isB {
				return info, refuse("%s: tensor %s is neither a .lora_a nor a .lora_b matrix", adapterPath, t.Name)
			}
		}
		p := pairs[weight]
		if p == nil {
			p = &pair{}
			pairs[weight] = p
			order = append(order, weight)
		}
		if isA {
			p.a = t
		} else {
			p.b = t
		}
	}
	for _, weight := range order {
		p := pairs[weight]
		if p.a == nil || p.b == nil {
			return info, refuse("%s: %s has only one of .lora_a and .lora_b", adapterPath, weight)
		}
		ta, tb := *p.a, *p.b
		module, _, kind, err := ggufToHF(weight)
		if err != nil {
			return info, refuse("%s: %v", adapterPath, err)
		}
		dt, ok := stType(ta.Type)
		if !ok || ta.Type != tb.Type {
			return info, refuse("%s: %s is %s and %s is %s; only F32, F16 and BF16 adapters (both alike) can be exported", adapterPath, ta.Name, ta.Type, tb.Name, tb.Type)
		}
		if len(ta.Shape) != 2 || len(tb.Shape) != 2 || ta.Shape[1] != tb.Shape[0] {
			return info, refuse("%s: %s %v and %s %v are not a LoRA pair", adapterPath, ta.Name, ta.Shape, tb.Name, tb.Shape)
		}
		in, r, out := ta.Shape[0], ta.Shape[1], tb.Shape[1]
		if rank == 0 {
			rank = int(r)
		} else if int(r) != rank {
			return info, refuse("%s: %s has rank %d, others %d; PEFT's config has one r", adapterPath, ta.Name, r, rank)
		}
		if base != nil {
			bin, bout, err := base.matrix(weight)
			if err != nil {
				return info, err
			}
			if bin != in || bout != out {
				return info, refuse("%s: %s adapts a {%d, %d} matrix, but the base's is {%d, %d}", adapterPath, weight, in, out, bin, bout)
			}
		}
		ad, err := f.TensorData(ta.Name)
		if err != nil {
			return info, err
		}
		bd, err := f.TensorData(tb.Name)
		if err != nil {
			return info, err
		}
		if permutesQK[arch] && (kind == "attn_q" || kind == "attn_k") {
			if base == nil {
				return info, refuse("%s adapts %s of a llama model: its rows must be un-permuted by head, so --base is needed for the head counts", adapterPath, weight)
			}
			if bd, err = permuteRows(bd, int(out), int(r)*dt.Size(), base.headsFor(kind), false); err != nil {
				return info, refuse("%s: %s: %v", adapterPath, tb.Name, err)
			}
			info.Permuted++
		}
		prefix := "base_model.model." + module
		if err := w.Add(prefix+".lora_A.weight", dt, []uint64{r, in}, ad); err != nil {
			return info, err
		}
		if err := w.Add(prefix+".lora_B.weight", dt, []uint64{out, r}, bd); err != nil {
			return info, err
		}
		targets[shortName(module)] = true
		info.Tensors += 2
	}
	if rank == 0 {
		return info, refuse("%s holds no LoRA tensors", adapterPath)
	}
	info.Rank = rank
	for t := range targets {
		info.Targets = append(info.Targets, t)
	}
	sort.Strings(info.Targets)
	// llama.cpp applies no scaling when alpha is 0, which PEFT expresses as
	// lora_alpha = r.
	info.Alpha = float64(alpha)
	if alpha == 0 {
		info.Alpha = float64(rank)
	}

	// The adapter's GGUF header, kept for a bit-identical import.
	hw := gguf.NewWriter()
	for _, kv := range f.KVs {
		hw.SetKV(kv)
	}
	var hb bytes.Buffer
	if _, err := hw.WriteTo(&hb); err == nil {
		w.SetMetadata(MetaGGUFHeader, base64.StdEncoding.EncodeToString(hb.Bytes()))
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, err
	}
	cfg := PEFTConfig{
		PEFTType: "LORA", TaskType: "CAUSAL_LM", BaseModel: opts.BaseModel, R: rank, LoRAAlpha: info.Alpha,
		TargetModules: info.Targets, Bias: "none", InitWeights: true, InferenceMode: true,
	}
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return info, err
	}
	// Weights first: a folder with a config but no weights is the worse
	// half-state.
	if err := w.WriteFile(filepath.Join(dir, AdapterWeightsFile)); err != nil {
		return info, err
	}
	if err := writeFileAtomic(filepath.Join(dir, AdapterConfigFile), append(cj, '\n')); err != nil {
		return info, err
	}
	return info, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path.
func writeFileAtomic(path string, data []byte) error {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file; refusing to write over it", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
