package tiny

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// refModel is a plain Go llama forward pass over a tiny GGUF file. It lets
// the tests check that the generated weights behave like a usable model
// (non-degenerate greedy decoding, LoRA effects) without llama.cpp. It
// follows llama.cpp's llama graph: RMS norm, RoPE on adjacent pairs (ggml
// "norm" mode), grouped-query attention, SwiGLU feed-forward.
type refModel struct {
	cfg     Config
	eps     float32
	w       map[string][]float32
	kCache  [][][]float32 // [layer][position] -> keys of all kv heads
	vCache  [][][]float32
	nextPos int
}

func loadRef(t testing.TB, path string, cfg Config) *refModel {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eps, _ := f.Float32("llama.attention.layer_norm_rms_epsilon")
	m := &refModel{cfg: cfg, eps: eps, w: map[string][]float32{}}
	for _, ti := range f.Tensors() {
		v, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		m.w[ti.Name] = v
	}
	m.kCache = make([][][]float32, cfg.Layers)
	m.vCache = make([][][]float32, cfg.Layers)
	return m
}

// applyLoRA merges an adapter into the weights: W += scale * B·A.
func (m *refModel) applyLoRA(t testing.TB, path string, rank int) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	alpha, _ := f.Float32("adapter.lora.alpha")
	scale := float32(1)
	if alpha != 0 {
		scale = alpha / float32(rank)
	}
	for _, ti := range f.Tensors() {
		base, ok := strings.CutSuffix(ti.Name, ".lora_a")
		if !ok {
			continue
		}
		a, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.TensorF32(base + ".lora_b")
		if err != nil {
			t.Fatal(err)
		}
		in := int(ti.Shape[0])
		w := m.w[base]
		out := len(w) / in
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				var s float32
				for r := 0; r < rank; r++ {
					s += b[o*rank+r] * a[r*in+i]
				}
				w[o*in+i] += scale * s
			}
		}
	}
}

// matVec computes W·x for a ggml matrix with ne {len(x), out}.
func matVec(w, x []float32) []float32 {
	in := len(x)
	out := make([]float32, len(w)/in)
	for o := range out {
		row := w[o*in : (o+1)*in]
		var s float32
		for i, v := range x {
			s += row[i] * v
		}
		out[o] = s
	}
	return out
}

func rmsNorm(x, w []float32, eps float32) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	k := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * k * w[i]
	}
	return out
}

// rope rotates adjacent pairs of every head in place.
func rope(x []float32, headDim, pos int) {
	for h := 0; h < len(x)/headDim; h++ {
		for i := 0; i < headDim; i += 2 {
			theta := float64(pos) * math.Pow(ropeFreqBase, -float64(i)/float64(headDim))
			c, s := float32(math.Cos(theta)), float32(math.Sin(theta))
			a, b := x[h*headDim+i], x[h*headDim+i+1]
			x[h*headDim+i] = a*c - b*s
			x[h*headDim+i+1] = a*s + b*c
		}
	}
}

// step feeds one token and returns the logits for the next.
func (m *refModel) step(tok int) []float32 {
	cfg := m.cfg
	e, hd := cfg.Embedding, cfg.HeadDim()
	pos := m.nextPos
	m.nextPos++
	h := append([]float32(nil), m.w["token_embd.weight"][tok*e:(tok+1)*e]...)
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		x := rmsNorm(h, m.w[p+"attn_norm.weight"], m.eps)
		q := matVec(m.w[p+"attn_q.weight"], x)
		k := matVec(m.w[p+"attn_k.weight"], x)
		v := matVec(m.w[p+"attn_v.weight"], x)
		rope(q, hd, pos)
		rope(k, hd, pos)
		m.kCache[l] = append(m.kCache[l], k)
		m.vCache[l] = append(m.vCache[l], v)

		att := make([]float32, e)
		group := cfg.Heads / cfg.KVHeads
		for head := 0; head < cfg.Heads; head++ {
			kvh := head / group
			qh := q[head*hd : (head+1)*hd]
			scores := make([]float64, pos+1)
			maxS := math.Inf(-1)
			for j := 0; j <= pos; j++ {
				kj := m.kCache[l][j][kvh*hd : (kvh+1)*hd]
				var s float64
				for i := range qh {
					s += float64(qh[i]) * float64(kj[i])
				}
				scores[j] = s / math.Sqrt(float64(hd))
				maxS = math.Max(maxS, scores[j])
			}
			var z float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - maxS)
				z += scores[j]
			}
			for j := range scores {
				vj := m.vCache[l][j][kvh*hd : (kvh+1)*hd]
				for i := range vj {
					att[head*hd+i] += float32(scores[j]/z) * vj[i]
				}
			}
		}
		for i, v := range matVec(m.w[p+"attn_output.weight"], att) {
			h[i] += v
		}

		x = rmsNorm(h, m.w[p+"ffn_norm.weight"], m.eps)
		g := matVec(m.w[p+"ffn_gate.weight"], x)
		u := matVec(m.w[p+"ffn_up.weight"], x)
		for i := range g {
			g[i] = g[i] / (1 + float32(math.Exp(-float64(g[i])))) * u[i]
		}
		for i, v := range matVec(m.w[p+"ffn_down.weight"], g) {
			h[i] += v
		}
	}
	return matVec(m.w["output.weight"], rmsNorm(h, m.w["output_norm.weight"], m.eps))
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// greedy feeds the prompt and then generates n tokens greedily, not stopping
// at end-of-generation tokens so degeneration would show.
func (m *refModel) greedy(prompt []int, n int) []int {
	var logits []float32
	for _, tok := range prompt {
		logits = m.step(tok)
	}
	out := make([]int, 0, n)
	for range n {
		tok := argmax(logits)
		out = append(out, tok)
		logits = m.step(tok)
	}
	return out
}

// chatPrompt tokenizes a ChatML user turn the way llama.cpp would with
// special-token parsing: control tokens by id, every other byte by itself.
func chatPrompt(user string) []int {
	toks := []int{TokenIMStart}
	for _, b := range []byte("user\n" + user) {
		toks = append(toks, int(b))
	}
	toks = append(toks, TokenIMEnd, '\n', TokenIMStart)
	for _, b := range []byte("assistant\n") {
		toks = append(toks, int(b))
	}
	return toks
}
