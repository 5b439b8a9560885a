package llama_test

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// benchTrainConfig is the model both training benchmarks use: a fresh
// model of `codeplan model init` (4 layers of 256, about 3.5M weights),
// small enough for a CPU and large enough that the matrix products, not
// graph building, dominate a step.
var benchTrainConfig = tiny.Config{Embedding: 256, Heads: 4, KVHeads: 4, FeedForward: 768, Layers: 4, ContextLength: 1024, Seed: 1}

// BenchmarkTrain measures training throughput (tokens per second through
// forward, backward and the AdamW step) of full training and of LoRA rank 8
// on all seven matrices per layer, on the same model and the same batch of
// 512 tokens (4 rows of 128, all scored).
func BenchmarkTrain(b *testing.B) {
	path := filepath.Join(b.TempDir(), "init.gguf")
	if err := tiny.WriteInit(path, benchTrainConfig, tiny.InitOptions{}); err != nil {
		b.Fatal(err)
	}
	for _, method := range []string{"full", "lora-r8"} {
		b.Run(method, func(b *testing.B) {
			m, err := llama.LoadModel(path, llama.ModelOptions{NoMmap: true})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			opts := llama.TrainerOptions{MaxTokens: 512, Threads: benchThreads()}
			var tr *llama.Trainer
			if method == "full" {
				tr, err = m.NewFullTrainer(opts)
			} else {
				ap := filepath.Join(b.TempDir(), "lora.gguf")
				if err := tiny.WriteLoRA(ap, benchTrainConfig, tiny.LoRAOptions{Rank: 8, Alpha: 16, Targets: allTargets, Zero: true}); err != nil {
					b.Fatal(err)
				}
				a, err := m.LoadAdapter(ap)
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				tr, err = m.NewTrainer(a, opts)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			var batch llama.TrainBatch
			for r := 0; r < 4; r++ {
				toks := make([]llama.Token, 128)
				for i := range toks {
					toks[i] = llama.Token(32 + (i*7+r*13)%90)
				}
				if _, err := batch.Add(toks, 1); err != nil {
					b.Fatal(err)
				}
			}
			step := func(s int) {
				if err := tr.ZeroGrad(); err != nil {
					b.Fatal(err)
				}
				if _, err := tr.Accumulate(&batch, 1.0/508); err != nil {
					b.Fatal(err)
				}
				if err := tr.Update(llama.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(s)}); err != nil {
					b.Fatal(err)
				}
			}
			step(1) // allocates the compute buffers
			var elapsed time.Duration
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				start := time.Now()
				step(it + 2)
				elapsed += time.Since(start)
			}
			b.StopTimer()
			tokens := float64(batch.Len() * b.N)
			b.ReportMetric(tokens/elapsed.Seconds(), "tok/s")
			// tokens per second of CPU time (all threads): on a shared,
			// busy machine wall time mostly measures the others' load
			b.ReportMetric(tokens/(cpuTime(b)-cpu0).Seconds(), "tok/cpu-s")
			b.ReportMetric(float64(tr.Params()), "params")
		})
	}
}

// benchThreads is CODEPLAN_BENCH_THREADS, or every CPU: on a shared,
// oversubscribed machine one thread is faster, because ggml's worker
// threads spin at every barrier while one of them waits for a core.
func benchThreads() int {
	n, _ := strconv.Atoi(os.Getenv("CODEPLAN_BENCH_THREADS"))
	return n
}

// cpuTime is the CPU time (user and system, all threads) of this process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
