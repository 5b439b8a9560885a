package gguf

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddTensorFunc: a streamed tensor is written like an in-memory one, and
// a fill function that writes too few or too many bytes, or fails, fails the
// write with the tensor's name.
func TestAddTensorFunc(t *testing.T) {
	data := make([]byte, 64)
	for i := range data {
		data[i] = byte(i)
	}
	mem := NewWriter()
	mem.AddTensor("a", TensorF32, []uint64{16}, data)
	mem.AddTensor("b", TensorF16, []uint64{32}, data)
	streamed := NewWriter()
	streamed.AddTensor("a", TensorF32, []uint64{16}, data)
	if err := streamed.AddTensorFunc("b", TensorF16, []uint64{32}, func(w io.Writer) error {
		_, err := w.Write(data[:10]) // in pieces, as a generator would
		if err == nil {
			_, err = w.Write(data[10:])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if _, err := mem.WriteTo(&a); err != nil {
		t.Fatal(err)
	}
	if _, err := streamed.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("streamed tensor encodes differently from the in-memory one")
	}

	for _, tc := range []struct {
		name string
		fill func(io.Writer) error
		want string
	}{
		{"short", func(w io.Writer) error { _, err := w.Write(data[:63]); return err }, "wrote 63 bytes, want 64"},
		{"long", func(w io.Writer) error { _, err := w.Write(append(data, 0)); return err }, "wrote 65 bytes, want 64"},
		{"error", func(io.Writer) error { return errors.New("disk on fire") }, "disk on fire"},
	} {
		w := NewWriter()
		if err := w.AddTensorFunc("t", TensorF16, []uint64{32}, tc.fill); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "x.gguf")
		err := w.WriteFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"t"`) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(m) != 0 {
			t.Errorf("%s: failed write left %v", tc.name, m)
		}
	}
	w := NewWriter()
	if err := w.AddTensorFunc("q", TensorQ4_0, []uint64{31}, func(io.Writer) error { return nil }); err == nil {
		t.Error("Q4_0 with 31 values: no error")
	}
	if err := w.AddTensorFunc("n", TensorF32, []uint64{4}, nil); err == nil {
		t.Error("nil fill: no error")
	}
}
