package llama_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

var allTargets = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

func tinyAdapter(t testing.TB, m *llama.Model, opts tiny.LoRAOptions) *llama.Adapter {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lora.gguf")
	if err := tiny.WriteLoRA(p, tiny.DefaultConfig(), opts); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func newTrainer(t testing.TB, m *llama.Model, a *llama.Adapter, maxTokens int) *llama.Trainer {
	t.Helper()
	tr, err := m.NewTrainer(a, llama.TrainerOptions{Threads: 1, MaxTokens: maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func tokens(t testing.TB, m *llama.Model, s string) []llama.Token {
	t.Helper()
	toks, err := m.Tokenize(s, false, true)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// inferenceLoss scores toks[from:] with an ordinary decoding context.
func inferenceLoss(t testing.TB, m *llama.Model, a *llama.Adapter, toks []llama.Token, from int) float64 {
	t.Helper()
	c := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 256})
	if a != nil {
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
	}
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range toks {
		if _, err := b.Add(tok, llama.Pos(i), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Decode(b); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for i := from - 1; i < len(toks)-1; i++ {
		logits, err := c.Logits(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		mx := math.Inf(-1)
		for _, l := range logits {
			mx = math.Max(mx, float64(l))
		}
		z := 0.0
		for _, l := range logits {
			z += math.Exp(float64(l) - mx)
		}
		sum += mx + math.Log(z) - float64(logits[toks[i+1]])
	}
	return sum / float64(len(toks)-from)
}

func TestTrainForwardMatchesInference(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: allTargets, Seed: 3})
	tr := newTrainer(t, m, a, 128)
	toks := tokens(t, m, "The quick brown fox jumps over the lazy dog.")
	var b llama.TrainBatch
	if _, err := b.Add(toks, 5); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Evaluate(&b)
	if err != nil {
		t.Fatal(err)
	}
	want := inferenceLoss(t, m, a, toks, 5)
	t.Logf("train graph loss %.6f, inference loss %.6f, scored %d", got.Mean(), want, got.Scored)
	if got.Scored != len(toks)-5 {
		t.Errorf("scored %d, want %d", got.Scored, len(toks)-5)
	}
	if math.Abs(got.Mean()-want) > 1e-3*math.Max(1, want) {
		t.Errorf("train graph loss %.6f differs from inference %.6f", got.Mean(), want)
	}
}

func TestTrainLossFalls(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 8, Alpha: 16, Targets: allTargets, Zero: true, Seed: 1})
	tr := newTrainer(t, m, a, 256)
	var b llama.TrainBatch
	for _, s := range []string{"Plan: add(2, 3) then print", "Answer: five is the sum of two and three"} {
		if _, err := b.Add(tokens(t, m, s), 4); err != nil {
			t.Fatal(err)
		}
	}
	var first, last float64
	for step := 1; step <= 60; step++ {
		if err := tr.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		scored := 0
		for _, l := range b.Labels {
			if l >= 0 {
				scored++
			}
		}
		l, err := tr.Accumulate(&b, 1/float32(scored))
		if err != nil {
			t.Fatal(err)
		}
		if step == 1 {
			first = l.Mean()
		}
		last = l.Mean()
		if err := tr.Update(llama.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(step)}); err != nil {
			t.Fatal(err)
		}
		if step%10 == 0 {
			t.Logf("step %d loss %.4f acc %d/%d", step, l.Mean(), l.Correct, l.Scored)
		}
	}
	if last > 0.5*first {
		t.Errorf("loss fell from %.4f to %.4f only", first, last)
	}
}

// TestTrainGradientMatchesFiniteDifference checks the backward pass of every
// adapter tensor (so of every op the training graph differentiates,
// attention included) against central differences of the forward loss. It
// also guards the aliasing workaround in train.cpp: without it, rms_norm_back
// and soft_max_back produce gradients that are off by tens of percent.
func TestTrainGradientMatchesFiniteDifference(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 4, Alpha: 4, Targets: allTargets, Seed: 5})
	tr := newTrainer(t, m, a, 128)
	var b llama.TrainBatch
	if _, err := b.Add(tokens(t, m, "hello world, a gradient check"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(tokens(t, m, "second sequence here"), 2); err != nil {
		t.Fatal(err)
	}
	if err := tr.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	acc, err := tr.Accumulate(&b, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := tr.Evaluate(&b)
	if err != nil {
		t.Fatal(err)
	}
	if acc.LossSum != ev.LossSum || acc.Scored != ev.Scored {
		t.Errorf("forward of the training graph %v differs from evaluation %v", acc, ev)
	}
	checkGradients(t, tr, &b, true)
}

// TestTrainAccumulation: gradients of two batches with weights 1/N add up
// to the gradient of one batch holding both, and ZeroGrad clears them.
func TestTrainAccumulation(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: []string{"attn_v", "ffn_down"}, Seed: 9})
	tr := newTrainer(t, m, a, 128)
	x, y := tokens(t, m, "first row of the batch"), tokens(t, m, "and the second one")
	var both, b1, b2 llama.TrainBatch
	n1, _ := both.Add(x, 4)
	n2, _ := both.Add(y, 5)
	b1.Add(x, 4)
	b2.Add(y, 5)
	w := 1 / float32(n1+n2)
	grads := func(batches ...*llama.TrainBatch) [][]float32 {
		if err := tr.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if _, err := tr.Accumulate(b, w); err != nil {
				t.Fatal(err)
			}
		}
		var out [][]float32
		for i := range tr.Tensors() {
			g, err := tr.Get(i, llama.TensorGrad)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, g)
		}
		return out
	}
	one, two := grads(&both), grads(&b1, &b2)
	for i := range one {
		for j := range one[i] {
			if d := math.Abs(float64(one[i][j] - two[i][j])); d > 1e-4*(1+math.Abs(float64(one[i][j]))) {
				t.Fatalf("tensor %d[%d]: one batch %g, two batches %g", i, j, one[i][j], two[i][j])
			}
		}
	}
	tr.ZeroGrad()
	if norm, err := tr.GradNorm(); err != nil || norm != 0 {
		t.Errorf("gradient norm after ZeroGrad: %g, %v", norm, err)
	}
}

func TestTrainerRefusesBadInput(t *testing.T) {
	m := loadTiny(t)
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 2, Alpha: 2, Seed: 1})
	if _, err := m.NewTrainer(a, llama.TrainerOptions{}); err == nil {
		t.Error("MaxTokens 0 accepted")
	}
	tr := newTrainer(t, m, a, 16)
	var b llama.TrainBatch
	if _, err := b.Add(tokens(t, m, "this sequence is longer than sixteen tokens"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accumulate(&b, 1); err == nil {
		t.Error("batch over MaxTokens accepted")
	}
	if _, err := b.Add([]llama.Token{1}, 0); err == nil {
		t.Error("one-token sequence accepted")
	}
	var bad llama.TrainBatch
	bad.Add([]llama.Token{1, 2, 3}, 1)
	bad.Tokens[1] = 100000
	if _, err := tr.Evaluate(&bad); err == nil || !errors.Is(err, llama.ErrTrain) {
		t.Errorf("token outside the vocabulary: %v", err)
	}
	if err := tr.Update(llama.AdamW{LR: 0, Step: 1}); err == nil {
		t.Error("learning rate 0 accepted")
	}
	if err := a.Close(); !errors.Is(err, llama.ErrInUse) {
		t.Errorf("adapter closed under a trainer: %v", err)
	}
	tr.Close()
	if _, err := tr.Evaluate(&bad); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("closed trainer: %v", err)
	}
}

// writeTinyAs writes the tiny model with every matrix stored as typ.
func writeTinyAs(t testing.TB, typ gguf.TensorType) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny-"+typ.String()+".gguf")
	if err := tiny.WriteAs(p, tiny.DefaultConfig(), typ); err != nil {
		t.Fatal(err)
	}
	return p
}

func setKV(t testing.TB, w *gguf.Writer, kv gguf.KV) {
	switch v := kv.Value.(type) {
	case uint8:
		w.SetUint8(kv.Key, v)
	case int8:
		w.SetInt8(kv.Key, v)
	case uint16:
		w.SetUint16(kv.Key, v)
	case int16:
		w.SetInt16(kv.Key, v)
	case uint32:
		w.SetUint32(kv.Key, v)
	case int32:
		w.SetInt32(kv.Key, v)
	case uint64:
		w.SetUint64(kv.Key, v)
	case int64:
		w.SetInt64(kv.Key, v)
	case float32:
		w.SetFloat32(kv.Key, v)
	case float64:
		w.SetFloat64(kv.Key, v)
	case bool:
		w.SetBool(kv.Key, v)
	case string:
		w.SetString(kv.Key, v)
	case gguf.Array:
		w.SetArray(kv.Key, v)
	default:
		t.Fatalf("metadata %s: unexpected %T", kv.Key, kv.Value)
	}
}

func TestTrainWeightTypes(t *testing.T) {
	for _, typ := range []gguf.TensorType{gguf.TensorF16, gguf.TensorQ8_0, gguf.TensorQ4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			p := writeTinyAs(t, typ)
			m, err := llama.LoadModel(p, llama.ModelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			lp := filepath.Join(t.TempDir(), "lora.gguf")
			if err := tiny.WriteLoRA(lp, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: allTargets, Seed: 3}); err != nil {
				t.Fatal(err)
			}
			a, err := m.LoadAdapter(lp)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			tr, err := m.NewTrainer(a, llama.TrainerOptions{Threads: 1, MaxTokens: 128})
			if err != nil {
				t.Fatalf("new trainer: %v", err)
			}
			defer tr.Close()
			toks := tokens(t, m, "The quick brown fox jumps over the lazy dog.")
			var b llama.TrainBatch
			if _, err := b.Add(toks, 5); err != nil {
				t.Fatal(err)
			}
			got, err := tr.Evaluate(&b)
			if err != nil {
				t.Fatal(err)
			}
			want := inferenceLoss(t, m, a, toks, 5)
			t.Logf("%s: upcast %d bytes; train loss %.5f, inference loss %.5f", typ, tr.UpcastBytes(), got.Mean(), want)
			first := 0.0
			for step := 1; step <= 20; step++ {
				tr.ZeroGrad()
				l, err := tr.Accumulate(&b, 1/float32(got.Scored))
				if err != nil {
					t.Fatal(err)
				}
				if step == 1 {
					first = l.Mean()
				}
				if err := tr.Update(llama.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(step)}); err != nil {
					t.Fatal(err)
				}
			}
			after, _ := tr.Evaluate(&b)
			t.Logf("%s: loss %.4f -> %.4f", typ, first, after.Mean())
			if math.Abs(got.Mean()-want) > 0.02*want {
				t.Errorf("training graph loss %.5f, inference %.5f", got.Mean(), want)
			}
			if upcast := tr.UpcastBytes() > 0; upcast != (typ == gguf.TensorF16) {
				t.Errorf("%s: %d bytes of F32 copies", typ, tr.UpcastBytes())
			}
			if !(after.Mean() < 0.5*first) {
				t.Errorf("%s: loss fell from %.4f to %.4f only", typ, first, after.Mean())
			}
		})
	}
}

// writeTinyArch rewrites the tiny llama model as another architecture the
// trainer supports, adding what that architecture has and llama lacks:
// qwen2 gets q/k/v biases and a tied output matrix (no output.weight),
// qwen3 gets per-head q/k RMS norms. The weights are the tiny model's, the
// extras random, so the training graph must reproduce each architecture's
// inference graph exactly to match it.
func writeTinyArch(t testing.TB, arch string, typ gguf.TensorType) string {
	t.Helper()
	f, err := gguf.Open(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		kv.Key = strings.Replace(kv.Key, "llama.", arch+".", 1)
		if kv.Key == "general.architecture" {
			kv.Value = arch
		}
		setKV(t, w, kv)
	}
	cfg := tiny.DefaultConfig()
	r := rand.New(rand.NewPCG(1, 2))
	vec := func(n int, mean, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*r.NormFloat64())
		}
		return v
	}
	add := func(name string, shape []uint64, vals []float32) {
		var err error
		if len(shape) > 1 && typ == gguf.TensorF16 {
			err = w.AddF16(name, shape, vals)
		} else {
			err = w.AddF32(name, shape, vals)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range f.Tensors() {
		if arch == "qwen2" && ti.Name == "output.weight" {
			continue // tied to token_embd
		}
		vals, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		add(ti.Name, ti.Shape, vals)
	}
	e, kv, hd := uint64(cfg.Embedding), uint64(cfg.HeadDim()*cfg.KVHeads), uint64(cfg.HeadDim())
	for l := 0; l < cfg.Layers; l++ {
		blk := func(s string) string { return "blk." + strconv.Itoa(l) + "." + s }
		switch arch {
		case "qwen2":
			add(blk("attn_q.bias"), []uint64{e}, vec(int(e), 0, 0.5))
			add(blk("attn_k.bias"), []uint64{kv}, vec(int(kv), 0, 0.5))
			add(blk("attn_v.bias"), []uint64{kv}, vec(int(kv), 0, 0.5))
		case "qwen3":
			add(blk("attn_q_norm.weight"), []uint64{hd}, vec(int(hd), 1, 0.2))
			add(blk("attn_k_norm.weight"), []uint64{hd}, vec(int(hd), 1, 0.2))
		}
	}
	p := filepath.Join(t.TempDir(), "tiny-"+arch+".gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTrainOtherArchitectures checks the qwen2 and qwen3 variants of the
// training graph against inference and against finite differences.
func TestTrainOtherArchitectures(t *testing.T) {
	for _, c := range []struct {
		arch string
		typ  gguf.TensorType
	}{{"qwen2", gguf.TensorF32}, {"qwen3", gguf.TensorF32}, {"qwen2", gguf.TensorF16}} {
		t.Run(c.arch+"-"+c.typ.String(), func(t *testing.T) {
			m, err := llama.LoadModel(writeTinyArch(t, c.arch, c.typ), llama.ModelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			lp := filepath.Join(t.TempDir(), "lora.gguf")
			if err := tiny.WriteLoRA(lp, tiny.DefaultConfig(), tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: allTargets, Seed: 3, Architecture: c.arch}); err != nil {
				t.Fatal(err)
			}
			a, err := m.LoadAdapter(lp)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			tr, err := m.NewTrainer(a, llama.TrainerOptions{Threads: 1, MaxTokens: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			toks := tokens(t, m, "The quick brown fox jumps over the lazy dog.")
			var b llama.TrainBatch
			if _, err := b.Add(toks, 5); err != nil {
				t.Fatal(err)
			}
			got, err := tr.Evaluate(&b)
			if err != nil {
				t.Fatal(err)
			}
			want := inferenceLoss(t, m, a, toks, 5)
			t.Logf("%s %s: train graph %.5f, inference %.5f, F32 copies %d bytes", c.arch, c.typ, got.Mean(), want, tr.UpcastBytes())
			if math.Abs(got.Mean()-want) > 2e-3*want {
				t.Errorf("training graph loss %.5f, inference %.5f", got.Mean(), want)
			}
			tr.ZeroGrad()
			if _, err := tr.Accumulate(&b, 1); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 5, 12, 27} {
				grad, _ := tr.Get(i, llama.TensorGrad)
				val, _ := tr.Get(i, llama.TensorValue)
				j := 0
				for k := range grad {
					if math.Abs(float64(grad[k])) > math.Abs(float64(grad[j])) {
						j = k
					}
				}
				loss := func(d float32) float64 {
					v := append([]float32(nil), val...)
					v[j] += d
					tr.Set(i, llama.TensorValue, v)
					l, err := tr.Evaluate(&b)
					if err != nil {
						t.Fatal(err)
					}
					return l.LossSum
				}
				fd := (loss(1e-2) - loss(-1e-2)) / 2e-2
				tr.Set(i, llama.TensorValue, val)
				if g := float64(grad[j]); math.Abs(g-fd) > 0.02*math.Abs(fd)+0.02 {
					t.Errorf("%s: gradient %.5f, finite difference %.5f", tr.Tensors()[i].Name, g, fd)
				}
			}
		})
	}
}

// checkGradients compares, for every trained tensor, the element with the
// largest gradient against a central finite difference of the batch's
// summed loss (within 2%). allowZero accepts an all-zero gradient, as a LoRA
// A matrix has while its B is still zero.
func checkGradients(t *testing.T, tr *llama.Trainer, b *llama.TrainBatch, allowZero bool) {
	t.Helper()
	const eps = 1e-2
	for i, tt := range tr.Tensors() {
		grad, err := tr.Get(i, llama.TensorGrad)
		if err != nil {
			t.Fatal(err)
		}
		val, err := tr.Get(i, llama.TensorValue)
		if err != nil {
			t.Fatal(err)
		}
		j := 0 // the element with the largest gradient
		for k := range grad {
			if math.Abs(float64(grad[k])) > math.Abs(float64(grad[j])) {
				j = k
			}
		}
		if grad[j] == 0 && !allowZero {
			t.Errorf("%s: gradient is all zero", tt.Name)
			continue
		}
		loss := func(d float32) float64 {
			v := append([]float32(nil), val...)
			v[j] += d
			if err := tr.Set(i, llama.TensorValue, v); err != nil {
				t.Fatal(err)
			}
			l, err := tr.Evaluate(b)
			if err != nil {
				t.Fatal(err)
			}
			return l.LossSum
		}
		fd := (loss(eps) - loss(-eps)) / (2 * eps)
		if err := tr.Set(i, llama.TensorValue, val); err != nil {
			t.Fatal(err)
		}
		if g := float64(grad[j]); math.Abs(g-fd) > 0.02*math.Abs(fd)+0.01 {
			t.Errorf("%s[%d]: gradient %.5f, finite difference %.5f", tt.Name, j, g, fd)
		}
	}
}
