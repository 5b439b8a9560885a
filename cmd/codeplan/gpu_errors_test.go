package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
)

// TestGPUBackendMissing: --gpu with no backend anywhere names `make cuda`.
func TestGPUBackendMissing(t *testing.T) {
	err := loadGPUBackends(filepath.Join(t.TempDir(), "nowhere"))
	if err == nil || !strings.Contains(err.Error(), "make cuda") {
		t.Errorf("no backend: %v", err)
	}
	empty := t.TempDir()
	err = loadGPUBackends(empty)
	if err == nil || !strings.Contains(err.Error(), "holds no CUDA backend") || !strings.Contains(err.Error(), "make cuda") {
		t.Errorf("empty backend dir: %v", err)
	}
	if code := run([]string{"codeplan", "-q", "info", "--system", "--gpu", "--backend-dir", empty}); code != exitUsage {
		t.Errorf("info --system --gpu without a GPU: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"codeplan", "-q", "info", "--system"}); code != 0 {
		t.Errorf("info --system: exit %d", code)
	}
}

// TestGPUBackendOtherCUDA builds a stand-in libggml-cuda.so linked against
// a CUDA runtime this machine lacks (libcudart.so.99), as a backend built
// for another CUDA version is, and checks the message names the version and
// the fix, both from the function and through a command (exit 2, no crash).
func TestGPUBackendOtherCUDA(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed")
	}
	dir := t.TempDir()
	stub := filepath.Join(t.TempDir(), "stub")
	os.MkdirAll(stub, 0o755)
	os.WriteFile(filepath.Join(stub, "rt.c"), []byte("int cudart_stub(void) { return 1; }\n"), 0o644)
	os.WriteFile(filepath.Join(stub, "cuda.c"), []byte("int cudart_stub(void);\nint ggml_backend_score(void) { return cudart_stub(); }\n"), 0o644)
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-Wl,-soname,libcudart.so.99", "-o", filepath.Join(stub, "libcudart.so"), filepath.Join(stub, "rt.c")},
		{"-shared", "-fPIC", "-o", filepath.Join(dir, "libggml-cuda.so"), filepath.Join(stub, "cuda.c"), "-L" + stub, "-lcudart"},
	} {
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	err = loadGPUBackends(dir)
	if err == nil || !strings.Contains(err.Error(), "built for CUDA 99") || !strings.Contains(err.Error(), "make cuda") {
		t.Errorf("backend for another CUDA: %v", err)
	}
	if code := run([]string{"codeplan", "-q", "bench", "tiny", "--gpu", "--backend-dir", dir, "--parallels", "1", "--pp", "4", "--tg", "2"}); code != exitUsage {
		t.Errorf("bench --gpu with a backend for another CUDA: exit %d, want %d", code, exitUsage)
	}
}

// TestModelTooLargeForGPU: a model whose weights exceed the GPUs' free
// memory is refused with the number of layers that would fit.
func TestModelTooLargeForGPU(t *testing.T) {
	gpu := []llama.Device{{Name: "CPU", Kind: "cpu", FreeBytes: 1 << 40}, {Name: "CUDA0", Kind: "gpu", FreeBytes: 4 << 30}}
	err := checkFitsGPU("llama3-8b-f16.gguf", 16<<30, 32, gpu)
	if err == nil || !strings.Contains(err.Error(), "--ngl 7 (of 32)") || !strings.Contains(err.Error(), "4.00 GiB free") {
		t.Errorf("16 GiB model, 4 GiB free: %v", err)
	}
	if err := checkFitsGPU("m.gguf", 3<<30, 32, gpu); err != nil {
		t.Errorf("3 GiB model, 4 GiB free: %v", err)
	}
	if err := checkFitsGPU("m.gguf", 16<<30, 32, gpu[:1]); err != nil {
		t.Errorf("no GPU listed (Metal/unknown): %v", err)
	}
}

// TestModelRandomCLI: `model random` writes a loadable model; bad shapes,
// types and tokenizer folders are usage errors.
func TestModelRandomCLI(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m", "toy.gguf")
	if code := run([]string{"codeplan", "-q", "model", "random", "--shape", "toy", "--type", "q8_0", "--out", out}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if code := run([]string{"codeplan", "-q", "bench", out, "--parallels", "1", "--pp", "8", "--tg", "2", "--threads", "1"}); code != 0 {
		t.Errorf("bench on the written model: exit %d", code)
	}
	for _, args := range [][]string{
		{"--shape", "gpt5", "--out", out},
		{"--shape", "toy", "--type", "q3_k", "--out", out},
		{"--shape", "toy", "--tokenizer", filepath.Join(dir, "none"), "--out", out},
		{"--shape", "toy"},
	} {
		if code := run(append([]string{"codeplan", "-q", "model", "random"}, args...)); code != exitUsage {
			t.Errorf("model random %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
