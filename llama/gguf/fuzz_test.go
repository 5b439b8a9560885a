package gguf

import (
	"bytes"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the reader. It must never panic, and
// whatever it accepts must be self-consistent: every tensor lies inside the
// input and can be read back. Run with: go test -fuzz=FuzzRead ./llama/gguf
func FuzzRead(f *testing.F) {
	valid := encode(f, sampleWriter(f))
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(header(3, 0, 0))
	f.Add(header(2, 1, 1))
	f.Add([]byte("GGUF"))
	f.Add([]byte("not a gguf file"))

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, ti := range file.Tensors() {
			if ti.FileOffset+ti.Size > uint64(len(data)) {
				t.Fatalf("tensor %q ends at %d beyond %d bytes", ti.Name, ti.FileOffset+ti.Size, len(data))
			}
			b, err := file.TensorData(ti.Name)
			if err != nil || uint64(len(b)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, %v", ti.Name, len(b), err)
			}
			_, _ = file.TensorF32(ti.Name)
		}
		for _, kv := range file.KVs {
			if got, ok := file.Lookup(kv.Key); !ok || got.Type != kv.Type {
				t.Fatalf("key %q not found by Lookup", kv.Key)
			}
		}
	})
}
