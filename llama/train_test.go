package llama_test

import (
	"encoding/binary"
	"math"
	"os"
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

func TestTrainGradientMatchesFiniteDifference(t *testing.T) {
	m := loadTiny(t)
	targets := allTargets
	if e := os.Getenv("CP_TARGETS"); e != "" {
		targets = strings.Split(e, ",")
	}
	a := tinyAdapter(t, m, tiny.LoRAOptions{Rank: 4, Alpha: 4, Targets: targets, Seed: 5})
	tr := newTrainer(t, m, a, 128)
	var b llama.TrainBatch
	if _, err := b.Add(tokens(t, m, "hello world, a gradient check"), 3); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CP_ONE") == "" {
		if _, err := b.Add(tokens(t, m, "second sequence here"), 2); err != nil {
			t.Fatal(err)
		}
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
	t.Logf("accumulate loss %.6f, evaluate loss %.6f", acc.LossSum, ev.LossSum)
	for i, tt := range tr.Tensors() {
		if i%3 != 0 && os.Getenv("CP_ALL") == "" {
			continue
		}
		grad, err := tr.Get(i, llama.TensorGrad)
		if err != nil {
			t.Fatal(err)
		}
		val, err := tr.Get(i, llama.TensorValue)
		if err != nil {
			t.Fatal(err)
		}
		// the element with the largest gradient
		j := 0
		for k := range grad {
			if math.Abs(float64(grad[k])) > math.Abs(float64(grad[j])) {
				j = k
			}
		}
		eps := float32(1e-2)
		if e := os.Getenv("CP_EPS"); e != "" {
			f, _ := strconv.ParseFloat(e, 32)
			eps = float32(f)
		}
		loss := func(d float32) float64 {
			v := append([]float32(nil), val...)
			v[j] += d
			if err := tr.Set(i, llama.TensorValue, v); err != nil {
				t.Fatal(err)
			}
			l, err := tr.Evaluate(&b)
			if err != nil {
				t.Fatal(err)
			}
			return l.LossSum
		}
		fd := (loss(eps) - loss(-eps)) / (2 * float64(eps))
		if err := tr.Set(i, llama.TensorValue, val); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s[%d]: grad %.5f, finite difference %.5f", tt.Name, j, grad[j], fd)
	}
}

// writeTinyAs rewrites the tiny model with every matrix stored as typ
// (F16, Q8_0 or Q4_0, quantized here with the reference rounding of ggml).
func writeTinyAs(t testing.TB, typ gguf.TensorType) string {
	t.Helper()
	f, err := gguf.Open(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		setKV(t, w, kv)
	}
	for _, ti := range f.Tensors() {
		vals, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(ti.Shape) < 2 {
			if err := w.AddF32(ti.Name, ti.Shape, vals); err != nil {
				t.Fatal(err)
			}
			continue
		}
		switch typ {
		case gguf.TensorF16:
			err = w.AddF16(ti.Name, ti.Shape, vals)
		case gguf.TensorQ8_0:
			err = w.AddTensor(ti.Name, typ, ti.Shape, quantQ8_0(vals))
		case gguf.TensorQ4_0:
			err = w.AddTensor(ti.Name, typ, ti.Shape, quantQ4_0(vals))
		default:
			t.Fatalf("type %s", typ)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "tiny-"+typ.String()+".gguf")
	if err := w.WriteFile(p); err != nil {
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

func quantQ8_0(x []float32) []byte {
	out := make([]byte, 0, len(x)/32*34)
	for b := 0; b < len(x); b += 32 {
		amax := float32(0)
		for _, v := range x[b : b+32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		out = binary.LittleEndian.AppendUint16(out, gguf.Float32ToF16(d))
		for _, v := range x[b : b+32] {
			q := 0.0
			if d != 0 {
				q = math.Round(float64(v / d))
			}
			out = append(out, byte(int8(q)))
		}
	}
	return out
}

func quantQ4_0(x []float32) []byte {
	out := make([]byte, 0, len(x)/32*18)
	for b := 0; b < len(x); b += 32 {
		blk := x[b : b+32]
		amax, mx := float32(0), float32(0)
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := mx / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, gguf.Float32ToF16(d))
		for j := 0; j < 16; j++ {
			q0 := min(15, int(blk[j]*id+8.5))
			q1 := min(15, int(blk[j+16]*id+8.5))
			out = append(out, byte(q0)|byte(q1)<<4)
		}
	}
	return out
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
		})
	}
}
