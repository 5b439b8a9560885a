package finetune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// initModel writes a fresh model of the tiny shape, initialised for
// training from scratch, and returns its path.
func initModel(t testing.TB, opts tiny.InitOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "init.gguf")
	if err := tiny.WriteInit(p, tiny.DefaultConfig(), opts); err != nil {
		t.Fatal(err)
	}
	return p
}

// fullConfig trains a fresh model fully on the six test rows.
func fullConfig(t testing.TB, dir string) Config {
	cfg := quickConfig(t, dir)
	cfg.Full, cfg.Out, cfg.LR, cfg.Epochs, cfg.WeightDecay = true, filepath.Join(dir, "model.gguf"), 1e-2, 15, 0.1
	return cfg
}

// TestFullRunWritesTheTrainedModel: the model file Run writes holds exactly
// the weights the trained model has in memory (the logits are identical),
// its metadata (tokenizer, chat template) is the base's, and it beats LoRA
// rank 4 trained on the same rows for the same steps.
func TestFullRunWritesTheTrainedModel(t *testing.T) {
	base := initModel(t, tiny.InitOptions{})
	m := testmodel.LoadWritable(t, base)
	dir := t.TempDir()
	cfg := fullConfig(t, dir)
	res, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full: steps %d, loss %.3f -> %.3f, held-out %.3f -> %.3f, %.0f tok/s, %d params",
		res.Steps, res.FirstLoss, res.FinalLoss, res.EvalLoss0, res.EvalLoss, res.TokensPS, res.Params)
	if res.Model != cfg.Out || res.Adapter != "" || !fileExists(cfg.LogPath()) || res.Plot == "" || fileExists(cfg.CheckpointPath()) {
		t.Errorf("outputs: model %q adapter %q log %v plot %q checkpoint left %v", res.Model, res.Adapter, fileExists(cfg.LogPath()), res.Plot, fileExists(cfg.CheckpointPath()))
	}
	if want := 2*64*tiny.VocabSize + 64 + 2*(2*64+4*64*64+3*64*128); res.Params != want {
		t.Errorf("%d trained values, want every weight (%d)", res.Params, want)
	}
	if !(res.FinalLoss < 0.5*res.FirstLoss) || !(res.EvalLoss < res.EvalLoss0) {
		t.Errorf("loss %.3f -> %.3f, held-out %.3f -> %.3f", res.FirstLoss, res.FinalLoss, res.EvalLoss0, res.EvalLoss)
	}

	saved := testmodel.LoadFile(t, res.Model)
	toks, err := m.Tokenize("<|im_start|>user\nWhat is 17 + 25?<|im_end|>\n<|im_start|>assistant\nPlan:", false, true)
	if err != nil {
		t.Fatal(err)
	}
	inMemory, reloaded := lastLogits(t, m, nil, toks), lastLogits(t, saved, nil, toks)
	initial := lastLogits(t, testmodel.LoadFile(t, base), nil, toks)
	if d := testmodel.MaxDiff(inMemory, reloaded); d != 0 {
		t.Errorf("reloaded model's logits differ from the trained model's by up to %g", d)
	}
	if d := testmodel.MaxDiff(initial, reloaded); d < 1e-2 {
		t.Errorf("trained logits differ from the initial model's by %g only", d)
	}

	f, err := gguf.Open(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if tpl, _ := f.String("tokenizer.chat_template"); tpl != tiny.ChatTemplate {
		t.Errorf("chat template not carried over: %q", tpl)
	}
	if meth, _ := f.String(KeyMethod); meth != "full" {
		t.Errorf("%s = %q", KeyMethod, meth)
	}
	if steps, _ := f.Uint32(KeySteps); int(steps) != res.Steps {
		t.Errorf("%s = %d, want %d", KeySteps, steps, res.Steps)
	}

	// LoRA rank 4 on the same fresh model, rows, steps and learning rate
	lm := loadModel(t, base)
	lcfg := quickConfig(t, t.TempDir())
	lcfg.Rank, lcfg.Alpha, lcfg.LR, lcfg.Epochs = 4, 8, cfg.LR, cfg.Epochs
	lres, err := Run(context.Background(), lm, lcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LoRA r=4: loss %.3f -> %.3f, held-out %.3f, %d params", lres.FirstLoss, lres.FinalLoss, lres.EvalLoss, lres.Params)
	if lres.Steps != res.Steps {
		t.Fatalf("LoRA ran %d steps, full %d", lres.Steps, res.Steps)
	}
	if !(res.FinalLoss < 0.7*lres.FinalLoss) {
		t.Errorf("full training loss %.3f is not clearly below LoRA rank 4's %.3f", res.FinalLoss, lres.FinalLoss)
	}
}

// TestFullResumeEqualsUninterrupted: a full run stopped half-way and resumed
// from its checkpoint writes the same model as an uninterrupted run.
func TestFullResumeEqualsUninterrupted(t *testing.T) {
	base := initModel(t, tiny.InitOptions{})
	cfg := fullConfig(t, t.TempDir())
	cfg.Epochs = 4
	whole, err := Run(context.Background(), testmodel.LoadWritable(t, base), cfg)
	if err != nil {
		t.Fatal(err)
	}

	stopAt := whole.Steps / 2
	cfg2, part, err := runInterrupted(t, testmodel.LoadWritable(t, base), cfg, "model.gguf", stopAt)
	if !errors.Is(err, ErrInterrupted) || part.StepsDone != stopAt || !fileExists(cfg2.CheckpointPath()) || fileExists(cfg2.Out) {
		t.Fatalf("interrupted run: %v, %d steps done, checkpoint %v, model written %v", err, part.StepsDone, fileExists(cfg2.CheckpointPath()), fileExists(cfg2.Out))
	}
	// a LoRA run must not take over the full run's checkpoint
	lora := cfg2
	lora.Full, lora.Resume, lora.OnStep = false, true, nil
	if _, err := Run(context.Background(), loadModel(t, base), lora); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "method") {
		t.Errorf("LoRA resume of a full checkpoint: %v", err)
	}

	cfg2.Resume, cfg2.OnStep = true, nil
	rest, err := Run(context.Background(), testmodel.LoadWritable(t, base), cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if rest.StartedAt != stopAt || rest.StepsDone != whole.Steps {
		t.Errorf("resumed at %d, finished %d of %d", rest.StartedAt, rest.StepsDone, whole.Steps)
	}
	a, b := readModelTensors(t, whole.Model), readModelTensors(t, rest.Model)
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d vs %d tensors", len(a), len(b))
	}
	for name, va := range a {
		vb := b[name]
		if d := testmodel.MaxDiff(va, vb); len(va) != len(vb) || d != 0 {
			t.Errorf("%s: resumed model differs by up to %g", name, d)
		}
	}
	if rest.FinalLoss != whole.FinalLoss || rest.EvalLoss != whole.EvalLoss {
		t.Errorf("final loss %.8f / eval %.8f after resume, %.8f / %.8f uninterrupted", rest.FinalLoss, rest.EvalLoss, whole.FinalLoss, whole.EvalLoss)
	}
}

func readModelTensors(t testing.TB, path string) map[string][]float32 {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, ti := range f.Tensors() {
		v, err := f.TensorF32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[ti.Name] = v
	}
	return out
}

// TestFullTiedOutput: a model without output.weight computes its logits with
// token_embd; full training trains that one matrix for both uses, inference
// sees the update, and the written model stays tied.
func TestFullTiedOutput(t *testing.T) {
	base := initModel(t, tiny.InitOptions{Tied: true})
	m := testmodel.LoadWritable(t, base)
	cfg := fullConfig(t, t.TempDir())
	cfg.Epochs = 4
	res, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.FinalLoss < res.FirstLoss) {
		t.Errorf("loss %.3f -> %.3f", res.FirstLoss, res.FinalLoss)
	}
	got := readModelTensors(t, res.Model)
	if _, ok := got["output.weight"]; ok {
		t.Error("tied model gained an output.weight")
	}
	toks, err := m.Tokenize("What is 17 + 25?", false, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := testmodel.MaxDiff(lastLogits(t, m, nil, toks), lastLogits(t, testmodel.LoadFile(t, res.Model), nil, toks)); d != 0 {
		t.Errorf("reloaded tied model's logits differ by up to %g: the output copy of token_embd was not updated", d)
	}
}

// TestFullRefusals: --full refuses quantized or F16 models before loading
// them, and --merge with --full.
func TestFullRefusals(t *testing.T) {
	f16 := filepath.Join(t.TempDir(), "f16.gguf")
	if err := tiny.WriteAs(f16, tiny.DefaultConfig(), gguf.TensorF16); err != nil {
		t.Fatal(err)
	}
	b, err := InspectBase(f16)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fullConfig(t, t.TempDir())
	if err := Preflight(cfg, b); err == nil || !strings.Contains(err.Error(), "F32") {
		t.Errorf("F16 base: %v", err)
	}
	cfg.Merge = filepath.Join(t.TempDir(), "m.gguf")
	var ce *ConfigError
	if err := cfg.withDefaults().Validate(); !errors.As(err, &ce) || ce.Field != "Merge" {
		t.Errorf("Full with Merge: %v", err)
	}
}

// TestSnapshotTargetsCheckedFirst: the snapshot paths of a full run with
// Snapshots are checked with the other outputs before the model loads, so
// a folder (or device) where one would go fails now, not partway through
// the run.
func TestSnapshotTargetsCheckedFirst(t *testing.T) {
	base, err := InspectBase(initModel(t, tiny.InitOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fullConfig(t, dir)
	cfg.Snapshots = 4
	if err := Preflight(cfg, base); err != nil {
		t.Fatalf("clean folder: %v", err)
	}
	blocked := cfg.SnapshotPath(50)
	if !strings.HasSuffix(blocked, "model.at50.gguf") {
		t.Fatalf("snapshot path %s", blocked)
	}
	if err := os.Mkdir(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	var ce *ConfigError
	if err := Preflight(cfg, base); !errors.As(err, &ce) || ce.Field != "Out" || !strings.Contains(err.Error(), blocked) {
		t.Errorf("snapshot target is a folder: %v", err)
	}
}
