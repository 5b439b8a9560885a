package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/safetensors"
)

// gqaConfig is the tiny model with grouped-query attention (4 query heads
// over 2 key/value heads), so that q and k are permuted with different head
// counts.
func gqaConfig() tiny.Config {
	c := tiny.DefaultConfig()
	c.KVHeads = 2
	c.Seed = 77
	return c
}

var allTargets = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// writeModelAndAdapter writes the GQA tiny model and a rank-4 adapter on
// every target.
func writeModelAndAdapter(t testing.TB) (model, adapter string) {
	t.Helper()
	dir := t.TempDir()
	model, adapter = filepath.Join(dir, "base.gguf"), filepath.Join(dir, "adapter.gguf")
	if err := tiny.Write(model, gqaConfig()); err != nil {
		t.Fatal(err)
	}
	if err := tiny.WriteLoRA(adapter, gqaConfig(), tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: allTargets, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	return model, adapter
}

// withCodeplanKeys rewrites an adapter with metadata of the kinds finetune
// adds (strings, a string array, integers, floats), so the round trip must
// carry them.
func withCodeplanKeys(t testing.TB, path string) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		w.SetKV(kv)
	}
	w.SetString("codeplan.base.file", "base.gguf")
	w.SetStrings("codeplan.lora.targets", []string{"attn_q", "ffn_down", "attn_k"})
	w.SetUint32("codeplan.lora.rank", 4)
	w.SetUint64("codeplan.train.tokens", 1<<40+3)
	w.SetFloat64("codeplan.train.loss", 0.1234567890123)
	w.SetString("codeplan.train.mode", "codeplan")
	for _, ti := range f.Tensors() {
		d, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddTensor(ti.Name, ti.Type, ti.Shape, d); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestPermuteRows(t *testing.T) {
	// One head of 4 rows: transformers' halves (0 1 | 2 3) become llama.cpp's
	// pairs (0 2)(1 3), i.e. GGUF rows are transformers rows 0, 2, 1, 3.
	hfRows := []byte{0, 1, 2, 3}
	g, err := permuteRows(hfRows, 4, 1, 1, true)
	if err != nil || !bytes.Equal(g, []byte{0, 2, 1, 3}) {
		t.Fatalf("to GGUF: %v %v", g, err)
	}
	// Against a literal transcription of llama.cpp's permute: reshape to
	// (heads, 2, d/2), swap the last two axes, flatten.
	heads, d := 3, 8
	src := make([]byte, heads*d)
	for i := range src {
		src[i] = byte(i)
	}
	want := make([]byte, 0, len(src))
	for h := 0; h < heads; h++ {
		for j := 0; j < d/2; j++ {
			for i := 0; i < 2; i++ {
				want = append(want, src[h*d+i*(d/2)+j])
			}
		}
	}
	got, _ := permuteRows(src, heads*d, 1, heads, true)
	if !bytes.Equal(got, want) {
		t.Errorf("to GGUF %v, want %v", got, want)
	}
	back, _ := permuteRows(got, heads*d, 1, heads, false)
	if !bytes.Equal(back, src) {
		t.Errorf("round trip %v", back)
	}
	if _, err := permuteRows(src, heads*d, 1, 5, true); err == nil {
		t.Error("rows not divisible by heads accepted")
	}
}

// TestLoRARoundTripBitIdentical: GGUF -> PEFT -> GGUF gives the same file,
// byte for byte, including codeplan's own metadata.
func TestLoRARoundTripBitIdentical(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	withCodeplanKeys(t, adapter)
	base, err := InspectBase(model)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	dir := filepath.Join(t.TempDir(), "peft")
	ex, err := ExportLoRA(adapter, base, dir, ExportOptions{BaseModel: "hf-base"})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Rank != 4 || ex.Alpha != 8 || len(ex.Targets) != 7 || ex.Permuted != 4 {
		t.Errorf("export: %+v", ex)
	}
	w, im, err := ImportLoRA(dir, base, ImportOptions{Name: "ignored: the recorded header wins"})
	if err != nil {
		t.Fatal(err)
	}
	if !im.Recorded || im.Rank != 4 || im.Alpha != 8 || im.Permuted != 4 {
		t.Errorf("import: %+v", im)
	}
	out := filepath.Join(t.TempDir(), "again.gguf")
	if err := w.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(adapter)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Fatalf("round trip changed the adapter (%d -> %d bytes)", len(a), len(b))
	}
	// Without the recorded header the tensors are still the same bytes.
	st, _ := safetensors.Open(filepath.Join(dir, AdapterWeightsFile))
	defer st.Close()
	if st.Metadata["format"] != "pt" || st.Metadata[MetaGGUFHeader] == "" {
		t.Errorf("metadata %v", st.Metadata)
	}
}

// hfLayout returns the adapter's tensors as PEFT holds them, computed
// independently of the package: A as is; B of q/k with its rows put back in
// transformers' order by the literal index formula of llama.cpp's permute.
func hfLayout(t testing.TB, adapter string, cfg tiny.Config) map[string][]byte {
	t.Helper()
	f, err := gguf.Open(adapter)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mods := map[string]string{"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
		"attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
	out := map[string][]byte{}
	for _, ti := range f.Tensors() {
		parts := strings.Split(ti.Name, ".")
		kind, ab := parts[2], parts[4]
		d, _ := f.TensorData(ti.Name)
		key := "base_model.model.model.layers." + parts[1] + "." + mods[kind]
		if ab == "lora_a" {
			out[key+".lora_A.weight"] = d
			continue
		}
		heads := map[string]int{"attn_q": cfg.Heads, "attn_k": cfg.KVHeads}[kind]
		if heads > 0 {
			rowBytes := 4 * int(ti.Shape[0])
			rows := int(ti.Shape[1])
			hd := rows / heads
			hfd := make([]byte, len(d))
			for h := 0; h < heads; h++ {
				for j := 0; j < hd/2; j++ {
					for i := 0; i < 2; i++ {
						g := h*hd + 2*j + i       // GGUF row
						tr := h*hd + i*(hd/2) + j // transformers row
						copy(hfd[tr*rowBytes:(tr+1)*rowBytes], d[g*rowBytes:(g+1)*rowBytes])
					}
				}
			}
			d = hfd
		}
		out[key+".lora_B.weight"] = d
	}
	return out
}

// writeHandPEFT writes a PEFT folder the way PEFT documents it, by hand:
// adapter_config.json as a literal and adapter_model.safetensors with
// base_model.model.<module>.lora_A/B.weight tensors of shapes [r, in] and
// [out, r].
func writeHandPEFT(t testing.TB, dir, config string, tensors map[string][]byte, shapes map[string][]uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AdapterConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	w := safetensors.NewWriter()
	w.SetMetadata("format", "pt")
	// PEFT writes keys sorted; so does this test.
	keys := make([]string, 0, len(tensors))
	for k := range tensors {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		if err := w.Add(k, safetensors.F32, shapes[k], tensors[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(filepath.Join(dir, AdapterWeightsFile)); err != nil {
		t.Fatal(err)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

const handConfig = `{
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "codeplan/tiny",
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 8,
  "lora_dropout": 0.05,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 4,
  "rank_pattern": {},
  "revision": null,
  "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
}`

// handPEFT writes the adapter's hand-made PEFT twin and returns its folder.
func handPEFT(t testing.TB, adapter, config string) string {
	t.Helper()
	cfg := gqaConfig()
	tensors := hfLayout(t, adapter, cfg)
	f, _ := gguf.Open(adapter)
	defer f.Close()
	shapes := map[string][]uint64{}
	for k, d := range tensors {
		// [r, in] for A, [out, r] for B.
		r := uint64(4)
		if strings.Contains(k, "lora_A") {
			shapes[k] = []uint64{r, uint64(len(d)) / 4 / r}
		} else {
			shapes[k] = []uint64{uint64(len(d)) / 4 / r, r}
		}
	}
	dir := filepath.Join(t.TempDir(), "hand-peft")
	writeHandPEFT(t, dir, config, tensors, shapes)
	return dir
}

// TestImportHandWrittenPEFT: a PEFT folder written by hand imports to the
// very tensors of the GGUF adapter it was made from (so llama.cpp computes
// the same logits; TestImportedLogits in cmd/codeplan checks that).
func TestImportHandWrittenPEFT(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	dir := handPEFT(t, adapter, handConfig)
	base, err := InspectBase(model)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	w, im, err := ImportLoRA(dir, base, ImportOptions{Name: "hand"})
	if err != nil {
		t.Fatal(err)
	}
	if im.Recorded || im.Alpha != 8 || im.Rank != 4 || len(im.Targets) != 7 || im.Tensors != 28 {
		t.Errorf("import: %+v", im)
	}
	out := filepath.Join(t.TempDir(), "imported.gguf")
	if err := w.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	want, _ := gguf.Open(adapter)
	defer want.Close()
	got, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if a, _ := got.Float32(gguf.KeyAdapterAlpha); a != 8 {
		t.Errorf("alpha %v", a)
	}
	for _, ti := range want.Tensors() {
		g, ok := got.Tensor(ti.Name)
		if !ok {
			t.Fatalf("imported adapter lacks %s", ti.Name)
		}
		wd, _ := want.TensorData(ti.Name)
		gd, _ := got.TensorData(ti.Name)
		if !bytes.Equal(wd, gd) || g.Type != ti.Type || len(g.Shape) != 2 || g.Shape[0] != ti.Shape[0] || g.Shape[1] != ti.Shape[1] {
			t.Errorf("%s differs (shape %v vs %v)", ti.Name, g.Shape, ti.Shape)
		}
	}
}

func TestImportRSLoRA(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	cfg := strings.Replace(handConfig, `"use_rslora": false`, `"use_rslora": true`, 1)
	dir := handPEFT(t, adapter, cfg)
	base, _ := InspectBase(model)
	defer base.Close()
	_, im, err := ImportLoRA(dir, base, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// llama.cpp scales by alpha/r; rsLoRA by lora_alpha/sqrt(r) = 8/2.
	if !im.RSLoRA || math.Abs(float64(im.Alpha)/4-8.0/2) > 1e-6 {
		t.Errorf("rslora import: alpha %v, %+v", im.Alpha, im)
	}
}

// TestImportRefuses: every way a PEFT folder can fail to be a faithful GGUF
// LoRA is a clean ErrRefused naming the reason.
func TestImportRefuses(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	base, _ := InspectBase(model)
	defer base.Close()
	good := hfLayout(t, adapter, gqaConfig())
	shapes := func(ts map[string][]byte) map[string][]uint64 {
		s := map[string][]uint64{}
		for k, d := range ts {
			if strings.Contains(k, "lora_A") {
				s[k] = []uint64{4, uint64(len(d)) / 16}
			} else {
				s[k] = []uint64{uint64(len(d)) / 16, 4}
			}
		}
		return s
	}
	with := func(extra map[string][]byte) map[string][]byte {
		m := map[string][]byte{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	q := "base_model.model.model.layers.0.self_attn.q_proj"
	cases := []struct {
		name, config string
		tensors      map[string][]byte
		shapes       map[string][]uint64
		msg          string
	}{
		{"dora", strings.Replace(handConfig, `"use_dora": false`, `"use_dora": true`, 1), good, nil, "DoRA"},
		{"other type", strings.Replace(handConfig, `"peft_type": "LORA"`, `"peft_type": "IA3"`, 1), good, nil, "only LORA"},
		{"unknown config key", strings.Replace(handConfig, `"r": 4,`, `"r": 4, "lora_sparsity": 0.5,`, 1), good, nil, "unknown to codeplan"},
		{"bias", strings.Replace(handConfig, `"bias": "none"`, `"bias": "all"`, 1), good, nil, "bias"},
		{"alpha pattern", strings.Replace(handConfig, `"alpha_pattern": {}`, `"alpha_pattern": {"q_proj": 4}`, 1), good, nil, "one alpha"},
		{"pissa", strings.Replace(handConfig, `"init_lora_weights": true`, `"init_lora_weights": "pissa_niter_4"`, 1), good, nil, "modified base"},
		{"modules to save", strings.Replace(handConfig, `"modules_to_save": null`, `"modules_to_save": ["lm_head"]`, 1), good, nil, "modules_to_save"},
		{"rank mismatch", strings.Replace(handConfig, `"r": 4`, `"r": 8`, 1), good, nil, "r = 8"},
		{"not in target_modules", strings.Replace(handConfig, `"q_proj", `, ``, 1), good, nil, "does not name it"},
		{"unknown tensor", handConfig, with(map[string][]byte{"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector": make([]byte, 256)}), nil, "DoRA magnitude"},
		{"adapter name in key", handConfig, with(map[string][]byte{q + ".lora_A.default.weight": good[q+".lora_A.weight"], q + ".lora_A.weight": nil}), nil, "adapter name"},
		{"missing half", handConfig, with(map[string][]byte{q + ".lora_B.weight": nil}), nil, "only one of"},
		{"layer past the base", handConfig, with(map[string][]byte{
			"base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight": good[q+".lora_A.weight"],
			"base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight": good[q+".lora_B.weight"]}), nil, "layer 9"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "p")
		sh := c.shapes
		if sh == nil {
			sh = shapes(c.tensors)
		}
		if strings.Contains(c.name, "unknown tensor") {
			sh["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"] = []uint64{64}
		}
		writeHandPEFT(t, dir, c.config, c.tensors, sh)
		_, _, err := ImportLoRA(dir, base, ImportOptions{})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want a refusal mentioning %q", c.name, err, c.msg)
		}
	}
	// A shape that does not fit the base: the A matrix of another width.
	bad := with(nil)
	sh := shapes(bad)
	bad[q+".lora_A.weight"] = make([]byte, 4*4*32)
	sh[q+".lora_A.weight"] = []uint64{4, 32}
	dir := filepath.Join(t.TempDir(), "shape")
	writeHandPEFT(t, dir, handConfig, bad, sh)
	if _, _, err := ImportLoRA(dir, base, ImportOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("shape mismatch: %v", err)
	}
	// No safetensors, only a pickle.
	dir = filepath.Join(t.TempDir(), "bin")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, AdapterConfigFile), []byte(handConfig), 0o644)
	os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644)
	if _, _, err := ImportLoRA(dir, base, ImportOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "safe_serialization") {
		t.Errorf("pickle only: %v", err)
	}
	// A corrupt safetensors file.
	os.WriteFile(filepath.Join(dir, AdapterWeightsFile), []byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"), 0o644)
	if _, _, err := ImportLoRA(dir, base, ImportOptions{}); !errors.Is(err, safetensors.ErrCorrupt) {
		t.Errorf("corrupt safetensors: %v", err)
	}
}

func TestExportRefuses(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	// q/k of a llama adapter need the base's head counts.
	if _, err := ExportLoRA(adapter, nil, t.TempDir(), ExportOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "--base") {
		t.Errorf("no base: %v", err)
	}
	// A model is not an adapter.
	if _, err := ExportLoRA(model, nil, t.TempDir(), ExportOptions{}); !errors.Is(err, ErrRefused) {
		t.Errorf("model as adapter: %v", err)
	}
	// An adapter for another shape.
	other := filepath.Join(t.TempDir(), "other.gguf")
	oc := gqaConfig()
	oc.FeedForward = 96
	tiny.Write(other, oc)
	base, _ := InspectBase(other)
	defer base.Close()
	if _, err := ExportLoRA(adapter, base, t.TempDir(), ExportOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "base's is") {
		t.Errorf("other base: %v", err)
	}
}

// TestExportModelFiles checks config.json and the tensor names and shapes
// of export-hf on the tiny model; TestHFForwardMatchesLlamaCpp checks the
// numbers.
func TestExportModelFiles(t *testing.T) {
	model, _ := writeModelAndAdapter(t)
	dir := filepath.Join(t.TempDir(), "hf")
	res, err := ExportModel(model, dir, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c LlamaConfig
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	cfg := gqaConfig()
	if c.HiddenSize != cfg.Embedding || c.NumAttentionHeads != 4 || c.NumKeyValueHeads != 2 || c.NumHiddenLayers != 2 ||
		c.IntermediateSize != cfg.FeedForward || c.VocabSize != tiny.VocabSize || c.TorchDType != "float32" || c.RopeTheta != 10000 ||
		c.TieWordEmbeddings || c.HeadDim != 16 || c.Architectures[0] != "LlamaForCausalLM" {
		t.Errorf("config %+v", c)
	}
	st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, shape := range map[string][]uint64{
		"model.embed_tokens.weight":                      {tiny.VocabSize, 64},
		"lm_head.weight":                                 {tiny.VocabSize, 64},
		"model.norm.weight":                              {64},
		"model.layers.1.self_attn.k_proj.weight":         {32, 64},
		"model.layers.0.mlp.down_proj.weight":            {64, uint64(cfg.FeedForward)},
		"model.layers.0.post_attention_layernorm.weight": {64},
	} {
		ti, ok := st.Tensor(name)
		if !ok || len(ti.Shape) != len(shape) || ti.Shape[0] != shape[0] || ti.Shape[len(shape)-1] != shape[len(shape)-1] {
			t.Errorf("%s: %+v, want shape %v", name, ti, shape)
		}
	}
	if res.Tokenizer != "tokenizer.json written" {
		t.Errorf("tokenizer: %s", res.Tokenizer)
	}
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Type  string         `json:"type"`
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	raw, _ = os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	if tj.Model.Type != "BPE" || len(tj.Model.Vocab) != tiny.VocabSize || len(tj.AddedTokens) != 3 || tj.AddedTokens[2].Content != "<|im_end|>" ||
		tj.Model.Vocab["a"] != 'a' {
		t.Errorf("tokenizer.json: %d tokens, added %v", len(tj.Model.Vocab), tj.AddedTokens)
	}
	// A quantized model is refused.
	q := filepath.Join(t.TempDir(), "q8.gguf")
	if err := tiny.WriteAs(q, gqaConfig(), gguf.TensorQ8_0); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportModel(q, t.TempDir(), ModelOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "F32, F16 or BF16") {
		t.Errorf("quantized: %v", err)
	}
}

// f32s decodes little-endian float32s (F16 and BF16 widened).
func f32s(t testing.TB, d []byte, dt safetensors.DType) []float32 {
	t.Helper()
	switch dt {
	case safetensors.F32:
		out := make([]float32, len(d)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
		return out
	case safetensors.F16:
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = gguf.F16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
		return out
	}
	t.Fatalf("dtype %s", dt)
	return nil
}

// TestImportTargetModulesForms: target_modules as "all-linear" or as a
// regular expression (PEFT's two string forms) is checked against every
// tensor's module.
func TestImportTargetModulesForms(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	base, _ := InspectBase(model)
	defer base.Close()
	list := `["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]`
	for _, c := range []struct {
		targets string
		ok      bool
	}{
		{`"all-linear"`, true},
		{`".*\\.(self_attn|mlp)\\..*_proj"`, true},
		{`".*\\.self_attn\\.(q|v)_proj"`, false},
	} {
		dir := handPEFT(t, adapter, strings.Replace(handConfig, list, c.targets, 1))
		_, _, err := ImportLoRA(dir, base, ImportOptions{})
		if (err == nil) != c.ok {
			t.Errorf("target_modules %s: %v, want ok=%v", c.targets, err, c.ok)
		}
	}
}

// TestExportPairsByName: an adapter that lists every A before every B (as
// some tools write them) exports and imports to the same tensors; one
// without a B is refused.
func TestExportPairsByName(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	f, err := gguf.Open(adapter)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reorder := func(keepB bool) string {
		w := gguf.NewWriter()
		for _, kv := range f.KVs {
			w.SetKV(kv)
		}
		for _, suffix := range []string{".lora_a", ".lora_b"} {
			for _, ti := range f.Tensors() {
				if !strings.HasSuffix(ti.Name, suffix) || (suffix == ".lora_b" && !keepB && strings.HasPrefix(ti.Name, "blk.1.ffn_up")) {
					continue
				}
				d, _ := f.TensorData(ti.Name)
				w.AddTensor(ti.Name, ti.Type, ti.Shape, d)
			}
		}
		p := filepath.Join(t.TempDir(), "reordered.gguf")
		if err := w.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base, _ := InspectBase(model)
	defer base.Close()
	dir := filepath.Join(t.TempDir(), "peft")
	if _, err := ExportLoRA(reorder(true), base, dir, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	w, _, err := ImportLoRA(dir, base, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "back.gguf")
	w.WriteFile(out)
	back, _ := gguf.Open(out)
	defer back.Close()
	for _, ti := range f.Tensors() {
		a, _ := f.TensorData(ti.Name)
		b, err := back.TensorData(ti.Name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip: %v", ti.Name, err)
		}
	}
	if _, err := ExportLoRA(reorder(false), base, t.TempDir(), ExportOptions{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("half pair: %v", err)
	}
}
