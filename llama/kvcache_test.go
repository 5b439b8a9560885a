package llama_test

import (
	"errors"
	"testing"

	"github.com/codeplan-dev/codeplan/internal/testmodel"
	"github.com/codeplan-dev/codeplan/llama"
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
