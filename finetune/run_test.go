package finetune

import (
	"context"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
)

// greedyPlan lets the model write the plan for prompt (greedy decoding),
// with the adapter a when not nil.
func greedyPlan(t testing.TB, m *llama.Model, a *llama.Adapter, prompt string, maxTokens int) []llama.Token {
	t.Helper()
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}}
	ph, err := p.PlanPrompt(nil, prompt)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := m.Tokenize(ph.Text, true, true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(llama.ContextOptions{ContextSize: 512, BatchSize: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a != nil {
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
		defer c.ClearAdapters()
	}
	b, err := llama.NewBatch(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range toks {
		if _, err := b.Add(tok, llama.Pos(i), 0, i == len(toks)-1); err != nil {
			t.Fatal(err)
		}
	}
	var out []llama.Token
	pos := len(toks)
	for len(out) < maxTokens {
		if err := c.Decode(b); err != nil {
			t.Fatal(err)
		}
		logits, err := c.Logits(b.Len()-1, nil)
		if err != nil {
			t.Fatal(err)
		}
		best := 0
		for i, l := range logits {
			if l > logits[best] {
				best = i
			}
		}
		tok := llama.Token(best)
		if m.IsEOG(tok) {
			break
		}
		out = append(out, tok)
		if s, _ := m.Detokenize(out, false, false); strings.Contains(s, "\n```") {
			break
		}
		b.Clear()
		if _, err := b.Add(tok, llama.Pos(pos), 0, true); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	return out
}

// overlap is 2·LCS/(len(a)+len(b)): 1 for equal sequences, near 0 for
// unrelated ones.
func overlap(a, b []llama.Token) float64 {
	if len(a)+len(b) == 0 {
		return 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev, cur = cur, prev
	}
	return 2 * float64(prev[len(b)]) / float64(len(a)+len(b))
}

func TestRunTrainsPlans(t *testing.T) {
	m := loadModel(t, tinyPath)
	dir := t.TempDir()
	cfg := quickConfig(t, dir)
	cfg.Merge = filepath.Join(dir, "merged.gguf")
	res, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("steps %d, loss %.3f -> %.3f, held-out %.3f -> %.3f, %.0f tok/s, %d params",
		res.Steps, res.FirstLoss, res.FinalLoss, res.EvalLoss0, res.EvalLoss, res.TokensPS, res.Params)
	if !(res.FinalLoss < 0.5*res.FirstLoss) {
		t.Errorf("training loss fell from %.3f to %.3f only", res.FirstLoss, res.FinalLoss)
	}
	if math.IsNaN(res.EvalLoss) || math.IsNaN(res.EvalLoss0) || res.EvalRows == 0 {
		t.Errorf("no held-out loss: %+v", res)
	}
	wantParams := 0
	cfgT := tiny.DefaultConfig()
	e, f := cfgT.Embedding, cfgT.FeedForward
	kv := cfgT.HeadDim() * cfgT.KVHeads
	wantParams = cfgT.Layers * 8 * ((e + e) + (e + kv) + (e + kv) + (e + e) + (e + f) + (e + f) + (f + e))
	if res.Params != wantParams {
		t.Errorf("%d trainable values, want %d", res.Params, wantParams)
	}

	// the log has a row per step plus the baseline; the plot exists
	f2, err := os.Open(res.Log)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f2).ReadAll()
	f2.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != res.Steps+2 || recs[0][0] != "step" {
		t.Errorf("log has %d lines for %d steps", len(recs), res.Steps)
	}
	if st, err := os.Stat(res.Plot); err != nil || st.Size() < 1000 {
		t.Errorf("plot %s: %v", res.Plot, err)
	}
	if fileExists(cfg.CheckpointPath()) {
		t.Error("checkpoint left behind after a finished run")
	}
	info, err := ReadAdapterInfo(res.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := InspectBase(tinyPath)
	if info.BaseFingerprint != base.Fingerprint || info.Rank != 8 || info.Steps != res.Steps || len(info.Targets) != 7 {
		t.Errorf("adapter metadata %+v", info)
	}

	// greedy decoding of a training prompt now reproduces its plan
	a, err := m.LoadAdapter(res.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var before, after float64
	// rows the model trained on (the split depends on the seed and the ids)
	all := []Example{{ID: "r1"}, {ID: "r2"}, {ID: "r3"}, {ID: "r4"}, {ID: "r5"}, {ID: "r6"}}
	train, _ := splitValidation(all, cfg.ValSplit, cfg.Seed)
	var ids []string
	for _, i := range train[:3] {
		ids = append(ids, all[i].ID)
	}
	for _, id := range ids {
		want, err := m.Tokenize(rowField(t, id, "plan")+"\n```", false, false)
		if err != nil {
			t.Fatal(err)
		}
		b := overlap(greedyPlan(t, m, nil, rowField(t, id, "prompt"), len(want)+20), want)
		af := overlap(greedyPlan(t, m, a, rowField(t, id, "prompt"), len(want)+20), want)
		t.Logf("row %s: plan overlap %.2f before, %.2f after", id, b, af)
		before += b / float64(len(ids))
		after += af / float64(len(ids))
	}
	if !(after > 0.8 && after > before+0.4) {
		t.Errorf("plan overlap %.2f before training, %.2f after", before, after)
	}

	// the merged model behaves like base + adapter
	mm := loadModel(t, res.Merged)
	gotMerged := greedyPlan(t, mm, nil, rowField(t, ids[0], "prompt"), 40)
	gotAdapter := greedyPlan(t, m, a, rowField(t, ids[0], "prompt"), 40)
	if o := overlap(gotMerged, gotAdapter); o < 0.95 {
		t.Errorf("merged model writes a different plan (overlap %.2f)", o)
	}
}

func TestResumeEqualsUninterrupted(t *testing.T) {
	m := loadModel(t, tinyPath)
	cfg := quickConfig(t, t.TempDir())
	cfg.Epochs = 4
	full, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}

	stopAt := full.Steps / 2
	cfg2, part, err := runInterrupted(t, m, cfg, "adapter.gguf", stopAt)
	if !errors.Is(err, ErrInterrupted) || part.StepsDone != stopAt || !fileExists(cfg2.CheckpointPath()) {
		t.Fatalf("interrupted run: %v, %d steps done, checkpoint %v", err, part.StepsDone, fileExists(cfg2.CheckpointPath()))
	}
	var ie *InterruptedError
	if !errors.As(err, &ie) || ie.Step != stopAt || ie.Steps != full.Steps || ie.Checkpoint != cfg2.CheckpointPath() || part.Checkpoint != ie.Checkpoint {
		t.Errorf("interrupted run's error %#v, result checkpoint %q", ie, part.Checkpoint)
	}
	if fileExists(cfg2.Out) {
		t.Error("an interrupted run wrote the final adapter")
	}

	// a fresh run refuses to overwrite the checkpoint; changed settings are refused
	cfg2.OnStep = nil
	if _, err := Run(context.Background(), m, cfg2); !errors.Is(err, ErrCheckpointExists) || !strings.Contains(err.Error(), cfg2.CheckpointPath()) {
		t.Errorf("fresh run over a checkpoint: %v", err)
	}
	bad := cfg2
	bad.Resume, bad.LR = true, cfg2.LR*2
	if _, err := Run(context.Background(), m, bad); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "other settings") || !strings.Contains(err.Error(), "lr 0.01 -> 0.02") {
		t.Errorf("resume with another LR: %v", err)
	}

	cfg2.Resume = true
	rest, err := Run(context.Background(), m, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if rest.StartedAt != stopAt || rest.StepsDone != full.Steps {
		t.Errorf("resumed at %d, finished %d of %d", rest.StartedAt, rest.StepsDone, full.Steps)
	}
	// the finished run has nothing left to resume; another output has no checkpoint
	base, err := InspectBase(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Preflight(cfg2, base); !errors.Is(err, ErrNothingToResume) {
		t.Errorf("Preflight resuming a finished run: %v", err)
	}
	if _, err := Run(context.Background(), m, cfg2); !errors.Is(err, ErrNothingToResume) {
		t.Errorf("resuming a finished run: %v", err)
	}
	none := cfg2
	none.Out = filepath.Join(t.TempDir(), "never.gguf")
	if err := Preflight(none, base); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("Preflight resuming a run that never started: %v", err)
	}
	if _, err := Run(context.Background(), m, none); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("resuming a run that never started: %v", err)
	}
	if math.Abs(rest.FinalLoss-full.FinalLoss) > 1e-6 || math.Abs(rest.EvalLoss-full.EvalLoss) > 1e-6 {
		t.Errorf("final loss %.8f / eval %.8f after resume, %.8f / %.8f uninterrupted", rest.FinalLoss, rest.EvalLoss, full.FinalLoss, full.EvalLoss)
	}
	ta, err := readAdapterTensors(full.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := readAdapterTensors(rest.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	if len(ta) != len(tb) {
		t.Fatalf("%d vs %d tensors", len(ta), len(tb))
	}
	maxDiff := 0.0
	for i := range ta {
		for j := range ta[i].Values {
			maxDiff = math.Max(maxDiff, math.Abs(float64(ta[i].Values[j]-tb[i].Values[j])))
		}
	}
	t.Logf("largest adapter difference, resumed vs uninterrupted: %g", maxDiff)
	if maxDiff > 1e-6 {
		t.Errorf("resumed adapter differs by up to %g", maxDiff)
	}
	recs := readCSV(t, cfg2.LogPath())
	if len(recs) != full.Steps+2 {
		t.Errorf("resumed log has %d lines, want %d", len(recs), full.Steps+2)
	}
}

func readCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRefusesOtherBase(t *testing.T) {
	other := tiny.DefaultConfig()
	other.FeedForward = 96
	otherPath, err := tiny.Path(other)
	if err != nil {
		t.Fatal(err)
	}
	base, err := InspectBase(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	otherBase, err := InspectBase(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	if base.Fingerprint == otherBase.Fingerprint {
		t.Fatal("two different models share a fingerprint")
	}

	m := loadModel(t, tinyPath)
	cfg := quickConfig(t, t.TempDir())
	cfg.Epochs = 1
	ctx, cancel := context.WithCancel(context.Background())
	cfg.OnStep = func(StepStats) { cancel() }
	if _, err := Run(ctx, m, cfg); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("want an interrupted run, got %v", err)
	}
	cfg.OnStep = nil
	cfg.Resume = true
	mo := loadModel(t, otherPath)
	_, err = Run(context.Background(), mo, cfg)
	if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "another base") {
		t.Errorf("resume on another base: %v", err)
	}

	// a finished adapter is refused for the other base too
	ad := filepath.Join(t.TempDir(), "a.gguf")
	init, err := initialAdapter(base, 2, []string{"attn_q"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAdapter(ad, adapterMeta{base: base, alpha: 4, rank: 2, targets: []string{"attn_q"}}, init); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckAdapter(ad, base); err != nil {
		t.Errorf("own base refused: %v", err)
	}
	if _, err := CheckAdapter(ad, otherBase); err == nil || !strings.Contains(err.Error(), "another base") {
		t.Errorf("other base: %v", err)
	}
	if _, err := Merge(otherPath, ad, filepath.Join(t.TempDir(), "m.gguf"), 1); err == nil {
		t.Error("merge into another base accepted")
	}
}

func TestRefusesUnusableInputs(t *testing.T) {
	m := loadModel(t, tinyPath)
	cfg := quickConfig(t, t.TempDir())
	cfg.Data = "testdata/bad.jsonl"
	if _, err := Run(context.Background(), m, cfg); !errors.Is(err, ErrNoRows) {
		t.Errorf("data without plans: %v", err)
	}

	// a model of an architecture the trainer does not build
	w := gguf.NewWriter()
	w.SetString("general.architecture", "gemma2")
	w.SetUint32("gemma2.block_count", 1)
	if err := w.AddF32("blk.0.attn_q.weight", []uint64{4, 4}, make([]float32, 16)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gemma.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	b, err := InspectBase(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckTrainable(Targets, false); err == nil || !strings.Contains(err.Error(), "gemma2") {
		t.Errorf("gemma2 accepted: %v", err)
	}
	// --merge needs an unquantized base
	q := writeTinyAs(t, gguf.TensorQ8_0)
	qb, err := InspectBase(q)
	if err != nil {
		t.Fatal(err)
	}
	if err := qb.CheckTrainable(Targets, false); err != nil {
		t.Errorf("Q8_0 base refused for training: %v", err)
	}
	if err := qb.CheckTrainable(Targets, true); err == nil || !strings.Contains(err.Error(), "merging needs F32, F16 or BF16") {
		t.Errorf("Q8_0 base accepted for merging: %v", err)
	}
}

// runInterrupted runs cfg again with its output in a fresh folder (file name
// out) and cancels the run's context after step stopAt, as Ctrl-C does. It
// returns the config it ran, for the resume that follows.
func runInterrupted(t testing.TB, m *llama.Model, cfg Config, out string, stopAt int) (Config, *Result, error) {
	cfg.Out = filepath.Join(t.TempDir(), out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.OnStep = func(s StepStats) {
		if s.Step == stopAt {
			cancel()
		}
	}
	res, err := Run(ctx, m, cfg)
	return cfg, res, err
}
