package finetune

import (
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/lm"
)

// KeyMethod records how a model written by Run was trained ("full").
const KeyMethod = "codeplan.train.method"

// CheckFullTrainable refuses, before the weights are loaded, a model whose
// weights cannot all be trained: another architecture, or any weight that
// is not F32 (the trainer updates F32 master weights in place; `codeplan
// model init` writes F32 models).
func (b *Base) CheckFullTrainable() error {
	if err := b.checkArchitecture(); err != nil {
		return err
	}
	for name, ti := range b.tensors {
		if strings.HasPrefix(name, "rope_freqs") {
			continue // fixed RoPE factors, not trained
		}
		if ti.Type != gguf.TensorF32 {
			return fmt.Errorf("%s: full training needs F32 weights, but %s is %s (start from an F32 model, e.g. one 'codeplan model init' writes)", b.Path, name, ti.Type)
		}
	}
	return nil
}

// writeFullModel writes the trained model to path: the base file's metadata
// and tensors in the base's order, every trained tensor with its current
// values from tr (F32, as trained) and any other tensor copied, plus the
// metadata extra adds. The file is written atomically.
func writeFullModel(path string, base *Base, tr lm.Trainer, extra func(*gguf.Writer)) error {
	f, err := gguf.Open(base.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	trained := map[string]int{}
	for i, tt := range tr.Tensors() {
		trained[tt.Name] = i
	}
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		w.SetKV(kv)
	}
	if extra != nil {
		extra(w)
	}
	found := 0
	for _, ti := range f.Tensors() {
		i, ok := trained[ti.Name]
		if !ok {
			data, err := f.TensorData(ti.Name)
			if err != nil {
				return err
			}
			if err := w.AddTensor(ti.Name, ti.Type, ti.Shape, data); err != nil {
				return err
			}
			continue
		}
		found++
		vals, err := tr.Get(i, lm.TensorValue)
		if err != nil {
			return err
		}
		if err := w.AddF32(ti.Name, ti.Shape, vals); err != nil {
			return err
		}
	}
	if found != len(trained) {
		return fmt.Errorf("write %s: %d trained tensors, but only %d of them are in %s", path, len(trained), found, base.Path)
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}
