package llama

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/randmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// The CUDA contract test: every graph codeplan computes, built here on the
// CPU exactly as a GPU backend would receive it, checked node by node
// against the CUDA kernels' rules (cudacontract.go). A GPU is lent to this
// project for minutes at a time; what would abort there must fail here.

var loraTargetsAll = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// graphModel loads path with shapes only (no weight data).
func graphModel(t *testing.T, path string) *Model {
	t.Helper()
	m, err := LoadModel(path, ModelOptions{NoAlloc: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// writeZeroLoRA writes an all-zero adapter (holes in the file) of the given
// rank for every target of every layer of a model of shape s.
func writeZeroLoRA(t *testing.T, s randmodel.Shape, rank int, targets []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), s.Name+"-lora.gguf")
	w := gguf.NewLoRAWriter("llama", "contract-test", float32(2*rank))
	e, f := uint64(s.Embedding), uint64(s.FeedForward)
	kv := uint64(s.Embedding / s.Heads * s.KVHeads)
	shapes := map[string][2]uint64{
		"attn_q": {e, e}, "attn_k": {e, kv}, "attn_v": {e, kv}, "attn_output": {e, e},
		"ffn_gate": {e, f}, "ffn_up": {e, f}, "ffn_down": {f, e},
	}
	r := uint64(rank)
	for l := 0; l < s.Layers; l++ {
		for _, tg := range targets {
			base := fmt.Sprintf("blk.%d.%s.weight", l, tg)
			in, out := shapes[tg][0], shapes[tg][1]
			if err := w.AddZeroTensor(base+".lora_a", gguf.TensorF32, []uint64{in, r}); err != nil {
				t.Fatal(err)
			}
			if err := w.AddZeroTensor(base+".lora_b", gguf.TensorF32, []uint64{r, out}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainerGraphs builds the three graphs of a trainer as a GPU would get
// them: one batch of seqs packed sequences, the optimizer step and the
// gradient norm.
func trainerGraphs(t *testing.T, m *Model, a *Adapter, opts TrainerOptions, tokens, seqs int) map[string]*Graph {
	t.Helper()
	opts.GraphOnly, opts.AsGPU, opts.Threads = true, true, 1
	var tr *Trainer
	var err error
	if a != nil {
		tr, err = m.NewTrainer(a, opts)
	} else {
		tr, err = m.NewFullTrainer(opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	out := map[string]*Graph{}
	for name, kind := range map[string]GraphKind{"step": GraphStep, "adamw": GraphAdamW, "grad norm": GraphGradNorm} {
		g, err := tr.Graph(kind, tokens, seqs)
		if err != nil {
			t.Fatalf("%s graph: %v", name, err)
		}
		out[name] = g
	}
	return out
}

// requireCUDAClean fails the test on any node the CUDA backend would abort
// on or compute wrongly, on any op the contract does not cover, and on
// training work that would leave the GPU (a refused heavy op).
func requireCUDAClean(t *testing.T, name string, g *Graph) CUDAReport {
	t.Helper()
	r := CheckCUDA(g)
	if r.Nodes < 10 {
		t.Fatalf("%s: only %d nodes", name, r.Nodes)
	}
	for i, is := range r.Issues {
		if i == 5 {
			t.Errorf("%s: ... %d issues in all", name, len(r.Issues))
			break
		}
		t.Errorf("%s: %s", name, is)
	}
	if len(r.Unknown) > 0 {
		t.Errorf("%s: ops the CUDA contract does not cover (read them in ggml-cuda and add them to cudaRules): %v", name, r.Unknown)
	}
	for _, heavy := range []string{"MUL_MAT", "OUT_PROD", "CROSS_ENTROPY_LOSS", "CROSS_ENTROPY_LOSS_BACK", "OPT_STEP_ADAMW"} {
		if n := r.Fallbacks[heavy]; n > 0 {
			t.Errorf("%s: %d %s nodes would run on the CPU instead of the GPU: %s", name, n, heavy, r.FallbackWhy[heavy])
		}
	}
	t.Logf("%s: %s", name, r.Summary())
	return r
}

// TestCUDAContractRawBackwardFails shows the rule that made GPU fine-tuning
// abort: ggml's own backward graph has a non-contiguous ACC source in every
// layer (the gradient of attention's view of Q), which CUDA accepts and
// then asserts on (acc.cu:51). Without this the contract test below could
// pass vacuously.
func TestCUDAContractRawBackwardFails(t *testing.T) {
	m := graphModel(t, tinyModelPath(t))
	a := zeroAdapterFor(t, m, tiny.DefaultConfig(), loraTargetsAll)
	for _, raw := range []bool{true, false} {
		gs := trainerGraphs(t, m, a, TrainerOptions{MaxTokens: 64, rawBackward: raw}, 48, 2)
		r := CheckCUDA(gs["step"])
		acc := 0
		for _, is := range r.Issues {
			if is.Node.Op == "ACC" && strings.Contains(is.Rule, "src1 contiguous") && is.Abort {
				acc++
			}
		}
		layers := tiny.DefaultConfig().Layers
		if raw && acc < layers {
			t.Errorf("raw backward graph: %d aborting ACC nodes, want one per layer (%d); the contract no longer sees the defect: %s", acc, layers, r.Summary())
		}
		if !raw && len(r.Issues) > 0 {
			t.Errorf("legalized graph still has issues: %s", r.Summary())
		}
	}
}

func tinyModelPath(t *testing.T) string {
	t.Helper()
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// zeroAdapterFor writes a zero adapter for a tiny-config model and loads it.
func zeroAdapterFor(t *testing.T, m *Model, cfg tiny.Config, targets []string) *Adapter {
	t.Helper()
	s := randmodel.Shape{Name: "tiny", Layers: cfg.Layers, Embedding: cfg.Embedding, Heads: cfg.Heads, KVHeads: cfg.KVHeads, FeedForward: cfg.FeedForward}
	a, err := m.LoadAdapter(writeZeroLoRA(t, s, 4, targets))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestCUDAContractTraining checks every training graph: LoRA on all targets
// and on attention only, full training with an untied and a tied output,
// several sequences packed in one batch (what gradient accumulation runs
// per micro-batch), the optimizer and gradient-norm graphs, and LoRA on the
// real shapes of Llama-3.2-1B and Llama-3-8B in F16 and Q4_0 (shapes only:
// the weights are never allocated).
func TestCUDAContractTraining(t *testing.T) {
	dir := t.TempDir()
	cfg := tiny.DefaultConfig()
	tied := filepath.Join(dir, "tied.gguf")
	untied := filepath.Join(dir, "untied.gguf")
	if err := tiny.WriteInit(tied, cfg, tiny.InitOptions{Tied: true}); err != nil {
		t.Fatal(err)
	}
	if err := tiny.WriteInit(untied, cfg, tiny.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	gqa := cfg
	gqa.KVHeads = 2
	gqaPath := filepath.Join(dir, "gqa.gguf")
	if err := tiny.Write(gqaPath, gqa); err != nil {
		t.Fatal(err)
	}

	t.Run("lora all targets", func(t *testing.T) {
		m := graphModel(t, tinyModelPath(t))
		for name, g := range trainerGraphs(t, m, zeroAdapterFor(t, m, cfg, loraTargetsAll), TrainerOptions{MaxTokens: 96}, 96, 3) {
			requireCUDAClean(t, name, g)
		}
	})
	t.Run("lora attention only, grouped-query", func(t *testing.T) {
		m := graphModel(t, gqaPath)
		for name, g := range trainerGraphs(t, m, zeroAdapterFor(t, m, gqa, []string{"attn_q", "attn_k", "attn_v", "attn_output"}), TrainerOptions{MaxTokens: 64}, 64, 1) {
			requireCUDAClean(t, name, g)
		}
	})
	for name, path := range map[string]string{"full untied": untied, "full tied": tied} {
		t.Run(name, func(t *testing.T) {
			m := graphModel(t, path)
			for gname, g := range trainerGraphs(t, m, nil, TrainerOptions{MaxTokens: 64}, 64, 2) {
				r := requireCUDAClean(t, gname, g)
				if gname == "step" && r.Fallbacks["GET_ROWS_BACK"] > 0 {
					t.Errorf("the embedding gradient would leave the GPU: %s", r.FallbackWhy["GET_ROWS_BACK"])
				}
			}
		})
	}
	if testing.Short() {
		t.Skip("real shapes skipped in -short mode")
	}
	for _, c := range []struct {
		shape string
		typ   gguf.TensorType
	}{{"1b", gguf.TensorQ4_0}, {"1b", gguf.TensorF16}, {"llama3-8b", gguf.TensorQ4_0}} {
		t.Run(fmt.Sprintf("lora %s %s", c.shape, c.typ), func(t *testing.T) {
			s, err := randmodel.Lookup(c.shape)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "model.gguf")
			if err := randmodel.Write(p, s, randmodel.Options{Type: c.typ, Zero: true}); err != nil {
				t.Fatal(err)
			}
			m := graphModel(t, p)
			a, err := m.LoadAdapter(writeZeroLoRA(t, s, 16, loraTargetsAll))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			gs := trainerGraphs(t, m, a, TrainerOptions{MaxTokens: 512}, 512, 2)
			for name, g := range gs {
				requireCUDAClean(t, name, g)
			}
			// every base matrix reaches OUT_PROD as F32: the GPU copies
			// non-F32 weights once (plan_upcasts), never falls back
			outProds := 0
			for _, n := range gs["step"].Nodes() {
				if n.Op == "OUT_PROD" {
					outProds++
				}
			}
			if outProds < s.Layers*7 {
				t.Errorf("%d OUT_PROD nodes for %d layers × 7 adapted matrices", outProds, s.Layers)
			}
		})
	}
}

// TestCUDAContractInference checks llama.cpp's own graphs as codeplan runs
// them: decoding with a LoRA adapter attached (prompt processing, then one
// token per sequence, as the engine does) and scoring every position of a
// text (what loglik's perplexity and plan-gain scoring compute), with flash
// attention off (codeplan's CPU default) and on (llama.cpp's "auto" picks
// it on a GPU).
func TestCUDAContractInference(t *testing.T) {
	m, err := LoadModel(tinyModelPath(t), ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := tiny.DefaultConfig()
	p := filepath.Join(t.TempDir(), "lora.gguf")
	if err := tiny.WriteLoRA(p, cfg, tiny.LoRAOptions{Rank: 4, Alpha: 8, Targets: loraTargetsAll, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	toks, err := m.Tokenize("Plan: def solve(x): return x + 1\nResponse: 42", false, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, fa := range []string{"off", "on"} {
		t.Run("flash attention "+fa, func(t *testing.T) {
			c, err := m.NewContext(ContextOptions{ContextSize: 512, BatchSize: 128, Sequences: 2, Threads: 1, FlashAttention: fa, RecordGraph: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SetAdapter(a, 1); err != nil {
				t.Fatal(err)
			}
			decode := func(last bool) {
				b, err := NewBatch(2*len(toks), 1)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				for s := 0; s < 2; s++ {
					for i, tok := range toks {
						if _, err := b.Add(tok, Pos(i), SeqID(s), !last || i == len(toks)-1); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := c.Decode(b); err != nil {
					t.Fatal(err)
				}
			}
			decode(false) // scoring: logits at every position
			g, err := c.RecordedGraph()
			if err != nil {
				t.Fatal(err)
			}
			requireCUDAClean(t, "scoring with adapter", g)
			c.ClearKV()
			decode(true) // prompt processing
			b, err := NewBatch(2, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for s := 0; s < 2; s++ {
				if _, err := b.Add(toks[0], Pos(len(toks)), SeqID(s), true); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Decode(b); err != nil {
				t.Fatal(err)
			}
			g, err = c.RecordedGraph()
			if err != nil {
				t.Fatal(err)
			}
			r := requireCUDAClean(t, "decoding with adapter", g)
			if r.Nodes < 20 {
				t.Errorf("decoding recorded only %d nodes", r.Nodes)
			}
		})
	}
}

// f32 makes a contiguous F32 GraphTensor of shape ne.
func f32(op string, ne ...int64) *GraphTensor {
	t := &GraphTensor{Op: op, Type: "f32", BlockSize: 1, TypeSize: 4, Node: true}
	copy(t.Ne[:], []int64{1, 1, 1, 1})
	copy(t.Ne[:], ne)
	t.Nb[0] = 4
	for i := 1; i < 4; i++ {
		t.Nb[i] = t.Nb[i-1] * uint64(t.Ne[i-1])
	}
	return t
}

// permuted swaps dims 1 and 2 of t's view, as ggml_permute(t, 0, 2, 1, 3).
func permuted(t *GraphTensor) *GraphTensor {
	p := *t
	p.Op, p.View = "PERMUTE", true
	p.Ne[1], p.Ne[2] = t.Ne[2], t.Ne[1]
	p.Nb[1], p.Nb[2] = t.Nb[2], t.Nb[1]
	return &p
}

// TestCUDARules checks single rules of the table on hand-made nodes, each
// against the line of the CUDA backend it cites.
func TestCUDARules(t *testing.T) {
	acc := f32("ACC", 16, 4, 8)
	acc.Src = []*GraphTensor{f32("SCALE", 16, 4, 8), permuted(f32("NONE", 16, 8, 4))}
	big := f32("GET_ROWS_BACK", 4096, 128256)
	big.Src = []*GraphTensor{f32("NONE", 4096, 512), {Op: "NONE", Type: "i32", BlockSize: 1, TypeSize: 4, Ne: [4]int64{512, 1, 1, 1}, Nb: [4]uint64{4, 2048, 2048, 2048}}, f32("NONE", 4096, 128256)}
	w := &GraphTensor{Op: "NONE", Type: "q4_0", BlockSize: 32, TypeSize: 18, Ne: [4]int64{4096, 4096, 1, 1}, Nb: [4]uint64{18, 18 * 128, 18 * 128 * 4096, 18 * 128 * 4096}}
	op := f32("OUT_PROD", 4096, 512)
	op.Src = []*GraphTensor{w, f32("TRANSPOSE", 512, 4096)}
	norm := f32("RMS_NORM_BACK", 100, 8)
	norm.Src = []*GraphTensor{f32("NONE", 100, 8), f32("NONE", 100, 8)}
	mm := f32("MUL_MAT", 64, 16, 40, 30)
	mm.Src = []*GraphTensor{f32("NONE", 64, 64, 40, 30), f32("NONE", 64, 16, 40, 30)}
	for _, c := range []struct {
		node     *GraphTensor
		issue    string // expected rule text, "" for none
		fallback bool
	}{
		{acc, "src1 contiguous", false},
		{big, "at most 65535 rows", false},
		{op, "", true},   // Q4_0 OUT_PROD: CUDA refuses, the CPU computes it
		{norm, "", true}, // row of 100: not a multiple of 32
		{mm, "", true},   // 1200 batches > 1024 (the module's patch)
	} {
		r := CheckCUDA(&Graph{Tensors: []*GraphTensor{c.node}})
		if c.fallback != (r.Fallbacks[c.node.Op] == 1) {
			t.Errorf("%s: fallbacks %v, want fallback %v", c.node, r.Fallbacks, c.fallback)
		}
		got := ""
		if len(r.Issues) > 0 {
			got = r.Issues[0].Rule
		}
		if (c.issue == "") != (got == "") || !strings.Contains(got, c.issue) {
			t.Errorf("%s: issue %q, want %q", c.node, got, c.issue)
		}
	}
	if r := CheckCUDA(&Graph{Tensors: []*GraphTensor{f32("NEW_OP", 4)}}); r.OK() || len(r.Unknown) != 1 {
		t.Errorf("an op outside the table must be reported: %+v", r)
	}
}
