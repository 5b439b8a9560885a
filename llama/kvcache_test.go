package llama_test

import (
	"errors"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// decodeFive runs one small decode, which is where a bad KV setting used to
// abort inside ggml.
func decodeFive(t *testing.T, ctx *llama.Context) {
	t.Helper()
	b, err := llama.NewBatch(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 5; i++ {
		if _, err := b.Add(65, llama.Pos(i), 0, i == 4); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
}

// TestKVCacheHeadSize reproduces issue 9 item 4: a quantized cache on a
// model whose head (16 values in the tiny model) is not a whole number of
// 32-value blocks aborted in a ggml assertion with flash attention on (q5_1
// even with it off). Every such setting is now ErrKVCache, before C sees it.
func TestKVCacheHeadSize(t *testing.T) {
	m := loadTiny(t)
	for _, ct := range []string{"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"} {
		for _, fa := range []string{"on", "off", "auto"} {
			for _, kv := range [][2]string{{ct, "f16"}, {"f16", ct}, {ct, ct}} {
				_, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1, CacheTypeK: kv[0], CacheTypeV: kv[1], FlashAttention: fa})
				if !errors.Is(err, llama.ErrKVCache) {
					t.Fatalf("K %s V %s flash %s: err = %v, want ErrKVCache", kv[0], kv[1], fa, err)
				}
			}
		}
	}
	for _, ct := range []string{"f32", "f16", "bf16"} {
		for _, fa := range []string{"on", "off"} {
			decodeFive(t, newCtx(t, m, llama.ContextOptions{ContextSize: 64, CacheTypeK: ct, CacheTypeV: ct, FlashAttention: fa}))
		}
	}
	if _, err := m.NewContext(llama.ContextOptions{CacheTypeK: "q3_k"}); !errors.Is(err, llama.ErrKVCache) {
		t.Errorf("unknown type: err = %v", err)
	}
}

// TestKVCacheQuantizedV: on a model whose heads are whole blocks (32
// values), quantized caches work with flash attention, and a quantized V
// cache without it is ErrKVCache (ggml has no kernel for it).
func TestKVCacheQuantizedV(t *testing.T) {
	cfg := tiny.DefaultConfig()
	cfg.Heads, cfg.KVHeads = 2, 2 // head size 64/2 = 32
	path, err := tiny.Path(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := testmodel.LoadFile(t, path)
	decodeFive(t, newCtx(t, m, llama.ContextOptions{ContextSize: 64, CacheTypeK: "q8_0", CacheTypeV: "q8_0", FlashAttention: "on"}))
	decodeFive(t, newCtx(t, m, llama.ContextOptions{ContextSize: 64, CacheTypeK: "q8_0", CacheTypeV: "f16", FlashAttention: "off"}))
	_, err = m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1, CacheTypeK: "q8_0", CacheTypeV: "q8_0", FlashAttention: "off"})
	if !errors.Is(err, llama.ErrKVCache) {
		t.Fatalf("quantized V without flash attention: err = %v, want ErrKVCache", err)
	}
}

// TestSaveLoadSeq: a sequence restored from SaveSeq into another stream
// continues exactly as the original (same logits for the same next tokens),
// occupies cells from the start of its stream, and KVCells reports each
// stream's cells as llama.cpp sees them.
func TestSaveLoadSeq(t *testing.T) {
	m := loadTiny(t)
	ctx := newCtx(t, m, llama.ContextOptions{ContextSize: 3 * 512, Sequences: 3})
	prefix, err := m.Tokenize("<|im_start|>user\nplan the steps of the answer", true, true)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := m.Tokenize(" and then", false, false)
	testmodel.LastLogits(t, ctx, 2, 0, prefix)
	c, err := ctx.KVCells(2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Used != len(prefix) || c.Highest != len(prefix) || c.Size != 512 || c.Attended != 256 {
		t.Fatalf("after %d tokens: %+v", len(prefix), c)
	}
	state, err := ctx.SaveSeq(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.LoadSeq(state, 0); err != nil {
		t.Fatal(err)
	}
	if c0, _ := ctx.KVCells(0); c0.Used != len(prefix) || c0.Highest != len(prefix) {
		t.Errorf("restored stream: %+v, want %d cells from the start", c0, len(prefix))
	}
	want := testmodel.LastLogits(t, ctx, 2, len(prefix), next)
	got := testmodel.LastLogits(t, ctx, 0, len(prefix), next)
	if d := testmodel.MaxDiff(got, want); d > 1e-4 {
		t.Errorf("restored sequence's logits differ by %g", d)
	}
	if c1, _ := ctx.KVCells(1); c1.Used != 0 || c1.Highest != 0 {
		t.Errorf("untouched stream: %+v", c1)
	}
	if err := ctx.LoadSeq(nil, 1); err == nil {
		t.Error("empty state accepted")
	}
	if err := ctx.LoadSeq([]byte("not a state"), 1); err == nil {
		t.Error("garbage state accepted")
	}
	if _, err := ctx.KVCells(3); err == nil {
		t.Error("sequence 3 of 3 accepted")
	}
	if _, err := ctx.SaveSeq(-1); err == nil {
		t.Error("sequence -1 accepted")
	}
}
