package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// cudaRuntime matches a CUDA runtime library the loader could not find, e.g.
// "libcudart.so.12: cannot open shared object file".
var cudaRuntime = regexp.MustCompile(`lib(cudart|cublas|cublasLt)\.so\.(\d+)`)

// explainBackendDir says, in one sentence that names the fix, why the GPU
// backend libraries in dir gave no GPU. ggml skips a library it cannot open
// with only a log line, so the library is opened again here to learn why.
func explainBackendDir(dir string) error {
	libs, _ := filepath.Glob(filepath.Join(dir, "libggml-cuda*.so*"))
	if len(libs) == 0 {
		return usagef("--gpu/--ngl: %s holds no CUDA backend (libggml-cuda.so): build it with `make cuda` (or pass --backend-dir)", dir)
	}
	if err := llama.ProbeLibrary(libs[0]); err != nil {
		msg := err.Error()
		if m := cudaRuntime.FindStringSubmatch(msg); m != nil {
			return usagef("--gpu/--ngl: the CUDA backend in %s was built for CUDA %s, whose %s this machine does not have: rebuild it here with `make cuda` (or install CUDA %s)", dir, m[2], m[0], m[2])
		}
		return usagef("--gpu/--ngl: the CUDA backend %s cannot be loaded (%s): rebuild it on this machine with `make cuda`", libs[0], strings.TrimSpace(msg))
	}
	return usagef("--gpu/--ngl: the CUDA backend in %s loads but finds no usable GPU: check `nvidia-smi`; if the driver is older than the CUDA the backend was built with, rebuild it with this machine's CUDA (`make cuda`)", dir)
}

// checkFitsGPU refuses to offload every layer of a model whose weights alone
// are larger than the free memory of the GPUs, which would otherwise fail
// deep inside llama.cpp's allocation. It suggests how many layers would fit.
func checkFitsGPU(path string, modelBytes uint64, layers int, devs []llama.Device) error {
	var free uint64
	gpus := 0
	for _, d := range devs {
		if d.Kind == "gpu" || d.Kind == "igpu" {
			free += d.FreeBytes
			gpus++
		}
	}
	if gpus == 0 || modelBytes <= free {
		return nil
	}
	fit := 0
	if layers > 0 {
		// Leave a tenth of the free memory for the KV cache and buffers.
		fit = int(float64(layers) * 0.9 * float64(free) / float64(modelBytes))
	}
	return usagef("--gpu: %s needs %s for its weights but the GPU has %s free: offload fewer layers with --ngl %d (of %d), free GPU memory, or use a smaller quantization",
		filepath.Base(path), humanBytes(modelBytes), humanBytes(free), fit, layers)
}

// modelSize returns a GGUF file's tensor bytes and layer count from its
// header, without loading it.
func modelSize(path string) (uint64, int, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var n uint64
	for _, t := range f.Tensors() {
		n += t.Size
	}
	layers := 0
	if arch, ok := f.String("general.architecture"); ok {
		if v, ok := f.Uint32(arch + ".block_count"); ok {
			layers = int(v)
		}
	}
	return n, layers, nil
}

// checkModelFitsGPU applies checkFitsGPU to a model file when every layer is
// to be offloaded; unreadable files are left for the loader to report.
func checkModelFitsGPU(path string, ngl int) error {
	if ngl >= 0 {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	size, layers, err := modelSize(path)
	if err != nil {
		return nil
	}
	if err := checkFitsGPU(path, size, layers, llama.Devices()); err != nil {
		return err
	}
	return nil
}
