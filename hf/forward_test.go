package hf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/safetensors"
)

// hfModel is transformers' LlamaForCausalLM forward pass written out in Go
// over the files export-hf and lora export write: weights in PyTorch
// [out, in] layout, RoPE rotating the two halves of each head
// (rotate_half), grouped-query attention, SwiGLU, RMSNorm, and a PEFT LoRA
// merged as W += lora_alpha/r · B·A. It shares no code with llama.cpp's
// graph or with the converter, so agreement with llama.cpp's logits checks
// the tensor map, the q/k row permutation and the adapter mapping at once.
type hfModel struct {
	c LlamaConfig
	w map[string][]float32
}

func loadHF(t testing.TB, dir string) *hfModel {
	t.Helper()
	m := &hfModel{w: map[string][]float32{}}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m.c); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, ti := range st.Tensors {
		d, err := st.Data(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		m.w[ti.Name] = f32s(t, d, ti.DType)
	}
	return m
}

// mergePEFT adds a PEFT adapter folder's update to the weights.
func (m *hfModel) mergePEFT(t testing.TB, dir string) {
	t.Helper()
	var cfg PEFTConfig
	raw, _ := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	scale := float32(cfg.LoRAAlpha / float64(cfg.R))
	st, err := safetensors.Open(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	for _, ti := range st.Tensors {
		km := peftKey.FindStringSubmatch(ti.Name)
		if km == nil || km[2] != "A" {
			continue
		}
		bi, ok := st.Tensor("base_model.model." + km[1] + ".lora_B.weight")
		if !ok {
			t.Fatalf("no B for %s", ti.Name)
		}
		ad, _ := st.Data(ti.Name)
		bd, _ := st.Data(bi.Name)
		a, b := f32s(t, ad, ti.DType), f32s(t, bd, bi.DType)
		r, in, out := int(ti.Shape[0]), int(ti.Shape[1]), int(bi.Shape[0])
		w := m.w[km[1]+".weight"]
		if len(w) != out*in {
			t.Fatalf("%s: weight has %d values, want %d×%d", km[1], len(w), out, in)
		}
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				var s float32
				for k := 0; k < r; k++ {
					s += b[o*r+k] * a[k*in+i]
				}
				w[o*in+i] += scale * s
			}
		}
		n++
	}
	if n == 0 {
		t.Fatal("no LoRA pairs merged")
	}
}

func linear(w, x []float32, out int) []float32 {
	in := len(x)
	y := make([]float32, out)
	for o := 0; o < out; o++ {
		var s float32
		row := w[o*in : (o+1)*in]
		for i, v := range x {
			s += row[i] * v
		}
		y[o] = s
	}
	return y
}

func rms(x, w []float32, eps float32) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v * inv * w[i]
	}
	return y
}

// ropeHalf is transformers' rotate_half RoPE on one head.
func ropeHalf(x []float32, pos int, theta float64) {
	d := len(x)
	for j := 0; j < d/2; j++ {
		ang := float64(pos) * math.Pow(theta, -2*float64(j)/float64(d))
		c, s := float32(math.Cos(ang)), float32(math.Sin(ang))
		a, b := x[j], x[j+d/2]
		x[j], x[j+d/2] = a*c-b*s, b*c+a*s
	}
}

// logits returns the next-token logits after toks.
func (m *hfModel) logits(toks []int) []float32 {
	c := m.c
	E, H, G, D, F := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
	emb := m.w["model.embed_tokens.weight"]
	hs := make([][]float32, len(toks))
	for p, tok := range toks {
		hs[p] = append([]float32(nil), emb[tok*E:(tok+1)*E]...)
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		pre := func(s string) []float32 { return m.w["model.layers."+itoa(l)+"."+s] }
		qs, ks, vs := make([][]float32, len(toks)), make([][]float32, len(toks)), make([][]float32, len(toks))
		for p := range toks {
			x := rms(hs[p], pre("input_layernorm.weight"), c.RMSNormEps)
			qs[p] = linear(pre("self_attn.q_proj.weight"), x, H*D)
			ks[p] = linear(pre("self_attn.k_proj.weight"), x, G*D)
			vs[p] = linear(pre("self_attn.v_proj.weight"), x, G*D)
			for h := 0; h < H; h++ {
				ropeHalf(qs[p][h*D:(h+1)*D], p, float64(c.RopeTheta))
			}
			for g := 0; g < G; g++ {
				ropeHalf(ks[p][g*D:(g+1)*D], p, float64(c.RopeTheta))
			}
		}
		for p := range toks {
			att := make([]float32, H*D)
			for h := 0; h < H; h++ {
				g := h / (H / G)
				q := qs[p][h*D : (h+1)*D]
				sc := make([]float64, p+1)
				mx := math.Inf(-1)
				for s := 0; s <= p; s++ {
					var dot float64
					for i := 0; i < D; i++ {
						dot += float64(q[i]) * float64(ks[s][g*D+i])
					}
					sc[s] = dot / math.Sqrt(float64(D))
					mx = math.Max(mx, sc[s])
				}
				var sum float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					sum += sc[s]
				}
				for s := range sc {
					for i := 0; i < D; i++ {
						att[h*D+i] += float32(sc[s]/sum) * vs[s][g*D+i]
					}
				}
			}
			o := linear(pre("self_attn.o_proj.weight"), att, E)
			for i := range o {
				hs[p][i] += o[i]
			}
			x := rms(hs[p], pre("post_attention_layernorm.weight"), c.RMSNormEps)
			gate, up := linear(pre("mlp.gate_proj.weight"), x, F), linear(pre("mlp.up_proj.weight"), x, F)
			for i := range gate {
				s := gate[i] / (1 + float32(math.Exp(float64(-gate[i]))))
				gate[i] = s * up[i]
			}
			dn := linear(pre("mlp.down_proj.weight"), gate, E)
			for i := range dn {
				hs[p][i] += dn[i]
			}
		}
	}
	x := rms(hs[len(toks)-1], m.w["model.norm.weight"], c.RMSNormEps)
	head := m.w["lm_head.weight"]
	if c.TieWordEmbeddings {
		head = emb
	}
	return linear(head, x, c.VocabSize)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}

// llamaLogits are llama.cpp's next-token logits after toks, with adapter
// when not empty.
func llamaLogits(t testing.TB, model, adapter string, toks []int) []float32 {
	t.Helper()
	m, err := llama.LoadModel(model, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 256, Threads: 1, FlashAttention: "off",
		CacheTypeK: "f32", CacheTypeV: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if adapter != "" {
		a, err := m.LoadAdapter(adapter)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
		defer c.ClearAdapters()
	}
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range toks {
		b.Add(llama.Token(tok), llama.Pos(i), 0, i == len(toks)-1)
	}
	if err := c.Decode(b); err != nil {
		t.Fatal(err)
	}
	l, err := c.Logits(len(toks)-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l...)
}

func maxAbs(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestHFForwardMatchesLlamaCpp is the local counterpart of the GPU check's
// transformers comparison: the exported model, with and without the
// exported adapter, run by a transformers-convention forward pass, gives
// llama.cpp's logits.
func TestHFForwardMatchesLlamaCpp(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	hfDir, peftDir := filepath.Join(t.TempDir(), "hf"), filepath.Join(t.TempDir(), "peft")
	if _, err := ExportModel(model, hfDir, ModelOptions{}); err != nil {
		t.Fatal(err)
	}
	base, err := InspectBase(model)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if _, err := ExportLoRA(adapter, base, peftDir, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	toks := []int{257, 'u', 's', 'e', 'r', '\n', 'W', 'h', 'a', 't', ' ', 'i', 's', ' ', '2', '+', '3', '?', 258, '\n', 257}
	ref := loadHF(t, hfDir)
	plain := ref.logits(toks)
	want := llamaLogits(t, model, "", toks)
	if d := maxAbs(plain, want); d > 1e-3 {
		t.Errorf("base model: max |transformers-style - llama.cpp| = %g", d)
	} else {
		t.Logf("base model: max abs difference %.2g over %d logits", d, len(want))
	}
	ref.mergePEFT(t, peftDir)
	adapted := ref.logits(toks)
	wantA := llamaLogits(t, model, adapter, toks)
	if d := maxAbs(adapted, wantA); d > 1e-3 {
		t.Errorf("with adapter: max |transformers-style - llama.cpp| = %g", d)
	} else {
		t.Logf("with adapter: max abs difference %.2g", d)
	}
	if d := maxAbs(wantA, want); d < 1e-2 {
		t.Errorf("the adapter changes the logits by only %g: the test would not see a wrong mapping", d)
	}
	// Without the permutation the comparison must fail, or it proves nothing.
	bad := loadHF(t, hfDir)
	for l := 0; l < bad.c.NumHiddenLayers; l++ {
		k := "model.layers." + itoa(l) + ".self_attn.q_proj.weight"
		w := bad.w[k]
		raw := make([]byte, 4*len(w))
		for i, v := range w {
			u := math.Float32bits(v)
			raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		g, _ := permuteRows(raw, bad.c.NumAttentionHeads*bad.c.HeadDim, 4*bad.c.HiddenSize, bad.c.NumAttentionHeads, true)
		bad.w[k] = f32s(t, g, safetensors.F32)
	}
	if d := maxAbs(bad.logits(toks), want); d < 1e-2 {
		t.Errorf("q rows left in llama.cpp's order still match (%g): the check is blind to the permutation", d)
	}
}

// TestHandPEFTChangesLogitsAsGGUF: the PEFT folder written by hand from
// PEFT's documented layout, imported, changes llama.cpp's logits exactly as
// the GGUF adapter it was made from does.
func TestHandPEFTChangesLogitsAsGGUF(t *testing.T) {
	model, adapter := writeModelAndAdapter(t)
	dir := handPEFT(t, adapter, handConfig)
	base, err := InspectBase(model)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	w, _, err := ImportLoRA(dir, base, ImportOptions{Name: "hand"})
	if err != nil {
		t.Fatal(err)
	}
	imported := filepath.Join(t.TempDir(), "imported.gguf")
	if err := w.WriteFile(imported); err != nil {
		t.Fatal(err)
	}
	toks := []int{257, 'H', 'i', '!', 258, '\n'}
	plain := llamaLogits(t, model, "", toks)
	want := llamaLogits(t, model, adapter, toks)
	got := llamaLogits(t, model, imported, toks)
	if d := maxAbs(got, want); d != 0 {
		t.Errorf("imported adapter's logits differ from the GGUF adapter's by %g", d)
	}
	if d := maxAbs(want, plain); d < 1e-2 {
		t.Errorf("the adapter changes the logits by only %g", d)
	}
}
