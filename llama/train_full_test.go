package llama_test

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

func newFullTrainer(t testing.TB, m *llama.Model, maxTokens int) *llama.Trainer {
	t.Helper()
	tr, err := m.NewFullTrainer(llama.TrainerOptions{Threads: 1, MaxTokens: maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestFullTrainGradientMatchesFiniteDifference checks the gradient of every
// model weight (embeddings, norms, every matrix, the output) against central
// differences of the forward loss.
//
// The second model has grouped-query attention (2 key/value heads for 4
// query heads): its attention products broadcast K and V over the heads,
// which the trainer's rewrite of ggml's out_prod gradients must map the
// same way.
func TestFullTrainGradientMatchesFiniteDifference(t *testing.T) {
	gqa := tiny.DefaultConfig()
	gqa.KVHeads = 2
	gqaPath := filepath.Join(t.TempDir(), "gqa.gguf")
	if err := tiny.Write(gqaPath, gqa); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"tiny": tinyPath, "gqa": gqaPath} {
		t.Run(name, func(t *testing.T) { checkFullGradients(t, path) })
	}
}

func checkFullGradients(t *testing.T, path string) {
	m := testmodel.LoadWritable(t, path)
	tr := newFullTrainer(t, m, 128)
	if !tr.Full() || tr.Adapter() != nil {
		t.Fatal("full trainer reports an adapter")
	}
	names := map[string]bool{}
	for _, tt := range tr.Tensors() {
		names[tt.Name] = true
	}
	for _, want := range []string{"token_embd.weight", "output.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.1.ffn_down.weight"} {
		if !names[want] {
			t.Errorf("trainable tensors lack %s: %v", want, names)
		}
	}
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
	if _, err := tr.Accumulate(&b, 1); err != nil {
		t.Fatal(err)
	}
	checkGradients(t, tr, &b, false)
}

// TestFullTrainUpdatesTheModel: optimizer steps lower the loss, and an
// inference context of the same model scores text exactly as the trainer
// does, so the steps changed the model's own weights.
func TestFullTrainUpdatesTheModel(t *testing.T) {
	m := testmodel.LoadWritable(t, tinyPath)
	tr := newFullTrainer(t, m, 256)
	text := tokens(t, m, "Plan: add(2, 3) then print. Answer: 5")
	var b llama.TrainBatch
	scored, err := b.Add(text, 4)
	if err != nil {
		t.Fatal(err)
	}
	before := inferenceLoss(t, m, nil, text, 4)
	for step := 1; step <= 20; step++ {
		if err := tr.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Accumulate(&b, 1/float32(scored)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Update(llama.AdamW{LR: 3e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: int64(step)}); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := tr.Evaluate(&b)
	if err != nil {
		t.Fatal(err)
	}
	after := inferenceLoss(t, m, nil, text, 4)
	t.Logf("inference loss %.4f -> %.4f, trainer %.4f", before, after, ev.Mean())
	if after > 0.5*before {
		t.Errorf("loss fell from %.4f to %.4f only", before, after)
	}
	if math.Abs(after-ev.Mean()) > 1e-3*math.Max(1, after) {
		t.Errorf("inference sees loss %.5f, trainer %.5f: the model's weights were not updated in place", after, ev.Mean())
	}
}

// TestFullTrainWeightDecayMatricesOnly: with a zero gradient an AdamW step
// is pure decay, w *= 1 - lr*wd, which must shrink every matrix and leave
// norm weights exactly as they were.
func TestFullTrainWeightDecayMatricesOnly(t *testing.T) {
	m := testmodel.LoadWritable(t, tinyPath)
	tr := newFullTrainer(t, m, 64)
	before := map[int][]float32{}
	for i := range tr.Tensors() {
		v, err := tr.Get(i, llama.TensorValue)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = v
	}
	if err := tr.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Update(llama.AdamW{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1, Step: 1}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tr.Tensors() {
		v, err := tr.Get(i, llama.TensorValue)
		if err != nil {
			t.Fatal(err)
		}
		factor := float32(0.9)
		if len(tt.Shape) < 2 || tt.Shape[1] == 1 {
			factor = 1
		}
		for k := range v {
			if want := before[i][k] * factor; math.Abs(float64(v[k]-want)) > 1e-6*math.Abs(float64(want))+1e-9 {
				t.Errorf("%s[%d] = %g after pure decay, want %g (factor %g)", tt.Name, k, v[k], want, factor)
				break
			}
		}
	}
}

// TestFullTrainRefusesMappedWeights: weights mapped from the file are
// read-only, so full training must refuse them with a clear error instead of
// crashing on the first update.
func TestFullTrainRefusesMappedWeights(t *testing.T) {
	m := loadTiny(t) // mmap is the default
	_, err := m.NewFullTrainer(llama.TrainerOptions{Threads: 1, MaxTokens: 64})
	if !errors.Is(err, llama.ErrTrain) || !strings.Contains(err.Error(), "without mmap") {
		t.Fatalf("mapped model: %v", err)
	}
	q := testmodel.LoadWritable(t, writeTinyAs(t, gguf.TensorF16))
	_, err = q.NewFullTrainer(llama.TrainerOptions{Threads: 1, MaxTokens: 64})
	if !errors.Is(err, llama.ErrTrain) || !strings.Contains(err.Error(), "F32") {
		t.Fatalf("F16 model: %v", err)
	}
}
