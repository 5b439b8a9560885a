package finetune

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// MergeStats reports a merge.
type MergeStats struct {
	Tensors int     // base matrices changed
	Scale   float64 // factor applied to B·A (scale × alpha / rank)
}

// Merge writes outPath: the base model with the adapter folded into its
// weights, W' = W + scale·(alpha/rank)·B·A for every adapted matrix, so the
// result runs without the adapter (and can be quantized like any model).
// The file is a byte copy of the base with only those matrices rewritten,
// in their own type; metadata is unchanged. Target matrices must be F32,
// F16 or BF16. The adapter must have been made for this base.
func Merge(basePath, adapterPath, outPath string, scale float64) (MergeStats, error) {
	var st MergeStats
	if sameFile(basePath, outPath) {
		return st, fmt.Errorf("merge: output %s is the base model itself", outPath)
	}
	base, err := InspectBase(basePath)
	if err != nil {
		return st, err
	}
	info, err := CheckAdapter(adapterPath, base)
	if err != nil {
		return st, err
	}
	tensors, err := readAdapterTensors(adapterPath)
	if err != nil {
		return st, err
	}
	pairs := map[string]*[2]*adapterTensor{}
	var order []string
	for i := range tensors {
		t := &tensors[i]
		name, ab := strings.TrimSuffix(t.Name, ".lora_a"), 0
		if strings.HasSuffix(t.Name, ".lora_b") {
			name, ab = strings.TrimSuffix(t.Name, ".lora_b"), 1
		}
		if pairs[name] == nil {
			pairs[name] = &[2]*adapterTensor{}
			order = append(order, name)
		}
		pairs[name][ab] = t
	}
	type job struct {
		w    gguf.TensorInfo
		a, b *adapterTensor
		s    float64
	}
	var jobs []job
	for _, name := range order {
		p := pairs[name]
		if p[0] == nil || p[1] == nil {
			return st, fmt.Errorf("%s: %s has only one of lora_a and lora_b", adapterPath, name)
		}
		w, ok := base.Tensor(name)
		if !ok {
			return st, fmt.Errorf("%s: adapter tensor %s has no base tensor in %s", adapterPath, name, basePath)
		}
		if !mergeTypes[w.Type] {
			return st, fmt.Errorf("merge: base tensor %s is %s; only F32, F16 and BF16 matrices can be merged into", name, w.Type)
		}
		a, b := p[0], p[1]
		if len(w.Shape) != 2 || len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != w.Shape[0] || b.Shape[1] != w.Shape[1] || a.Shape[1] != b.Shape[0] {
			return st, fmt.Errorf("%s: %s: shapes A %v, B %v do not fit base %v", adapterPath, name, a.Shape, b.Shape, w.Shape)
		}
		rank := float64(b.Shape[0])
		s := scale
		if info.Alpha != 0 {
			s = scale * float64(info.Alpha) / rank
		}
		st.Scale = s
		jobs = append(jobs, job{w: w, a: a, b: b, s: s})
	}

	if err := dataset.CheckTarget(outPath); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	dir := filepath.Dir(outPath)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(outPath)+".tmp-*")
	if err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	src, err := os.Open(basePath)
	if err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	_, err = io.Copy(tmp, src)
	src.Close()
	if err != nil {
		return st, fmt.Errorf("merge: copy %s: %w", basePath, err)
	}
	for _, j := range jobs {
		buf := make([]byte, j.w.Size)
		if _, err := tmp.ReadAt(buf, int64(j.w.FileOffset)); err != nil {
			return st, fmt.Errorf("merge: read %s: %w", j.w.Name, err)
		}
		vals := decode(j.w.Type, buf)
		addDelta(vals, j.a.Values, j.b.Values, int(j.w.Shape[0]), int(j.w.Shape[1]), int(j.b.Shape[0]), float32(j.s))
		encode(j.w.Type, vals, buf)
		if _, err := tmp.WriteAt(buf, int64(j.w.FileOffset)); err != nil {
			return st, fmt.Errorf("merge: write %s: %w", j.w.Name, err)
		}
		st.Tensors++
	}
	if err := tmp.Sync(); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	ok = true
	return st, nil
}

// addDelta adds s·B·A to w (ggml layout: w row o holds the in values of
// output o; A row k holds in values; B row o holds rank values), spreading
// the rows over the CPUs.
func addDelta(w, a, b []float32, in, out, rank int, s float32) {
	workers := min(runtime.NumCPU(), out)
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for o := g; o < out; o += workers {
				row := w[o*in : (o+1)*in]
				for k := 0; k < rank; k++ {
					c := s * b[o*rank+k]
					if c == 0 {
						continue
					}
					ak := a[k*in : (k+1)*in]
					for i := range row {
						row[i] += c * ak[i]
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

func decode(t gguf.TensorType, b []byte) []float32 {
	switch t {
	case gguf.TensorF32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out
	case gguf.TensorF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = gguf.F16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out
	default: // BF16
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = gguf.BF16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out
	}
}

func encode(t gguf.TensorType, v []float32, b []byte) {
	switch t {
	case gguf.TensorF32:
		for i, x := range v {
			le.PutUint32(b[4*i:], math.Float32bits(x))
		}
	case gguf.TensorF16:
		for i, x := range v {
			le.PutUint16(b[2*i:], gguf.Float32ToF16(x))
		}
	default:
		for i, x := range v {
			le.PutUint16(b[2*i:], gguf.Float32ToBF16(x))
		}
	}
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
