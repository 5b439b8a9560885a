package llama_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
)

// TestRepackQ4_0 loads a Q4_0 model with and without ModelOptions.Repack:
// with it, llama.cpp reports the CPU_REPACK weight buffer (the interleaved
// layout is used); without it, it does not. Both layouts must give the same
// logits for a prompt batch (the multi-row GEMM path) and for a single
// generated token (the one-row path), up to float summation order.
func TestRepackQ4_0(t *testing.T) {
	p := writeTinyAs(t, gguf.TensorQ4_0)
	var mu sync.Mutex
	var logs strings.Builder
	llama.SetLogHandler(func(_ llama.LogLevel, s string) {
		mu.Lock()
		logs.WriteString(s + "\n")
		mu.Unlock()
	})
	t.Cleanup(func() { llama.SetLogHandler(nil) })

	prompt := make([]llama.Token, 96)
	for i := range prompt {
		prompt[i] = llama.Token(3 + (i*37)%250)
	}
	run := func(repack bool) (promptLogits, stepLogits []float32, log string) {
		mu.Lock()
		logs.Reset()
		mu.Unlock()
		m, err := llama.LoadModel(p, llama.ModelOptions{Repack: repack})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mu.Lock()
		log = logs.String()
		mu.Unlock()
		ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 128, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		promptLogits = testmodel.LastLogits(t, ctx, 0, 0, prompt)
		stepLogits = testmodel.LastLogits(t, ctx, 0, len(prompt), []llama.Token{42})
		return promptLogits, stepLogits, log
	}
	plainPrompt, plainStep, plainLog := run(false)
	repPrompt, repStep, repLog := run(true)
	if !strings.Contains(repLog, "CPU_REPACK") {
		t.Errorf("Repack: no CPU_REPACK buffer in llama.cpp's load log:\n%s", repLog)
	}
	if strings.Contains(plainLog, "CPU_REPACK") {
		t.Errorf("without Repack the weights were still repacked:\n%s", plainLog)
	}
	scale := 0.0
	for _, v := range plainPrompt {
		scale = max(scale, float64(max(v, -v)))
	}
	// Both layouts quantize the activations to Q8_0 and sum int8 products
	// per block, but in different orders and with their own activation
	// quantizers; on this random model they agree to about 1% of the
	// largest logit. A wrong layout (repacked bytes read as plain Q4_0)
	// gives differences of the order of the logits themselves.
	tol := 0.03 * scale
	if d := testmodel.MaxDiff(plainPrompt, repPrompt); d > tol {
		t.Errorf("prompt logits differ by %g (tolerance %g, largest logit %g)", d, tol, scale)
	} else {
		t.Logf("prompt logits differ by %g, generation logits by %g (largest logit %g)", d, testmodel.MaxDiff(plainStep, repStep), scale)
	}
	if d := testmodel.MaxDiff(plainStep, repStep); d > tol {
		t.Errorf("generation logits differ by %g (tolerance %g)", d, tol)
	}
	if d := testmodel.MaxDiff(plainPrompt, plainStep); d < 5*tol {
		t.Errorf("logits after different tokens differ by only %g: the tolerance %g cannot tell a wrong layout", d, tol)
	}
}
