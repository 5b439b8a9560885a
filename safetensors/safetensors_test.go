package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample is a valid two-tensor file with metadata.
func sample(t testing.TB) []byte {
	t.Helper()
	w := NewWriter()
	w.SetMetadata("format", "pt")
	if err := w.Add("a.weight", F32, []uint64{2, 3}, make([]byte, 24)); err != nil {
		t.Fatal(err)
	}
	b := []byte{1, 2, 3, 4}
	if err := w.Add("b.bias", BF16, []uint64{2}, b); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// raw builds a file from a header string and a data section.
func raw(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	return append(append(out, header...), data...)
}

func TestRoundTrip(t *testing.T) {
	data := sample(t)
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || len(f.Tensors) != 2 {
		t.Fatalf("metadata %v, tensors %v", f.Metadata, f.Tensors)
	}
	a, _ := f.Tensor("a.weight")
	if a.DType != F32 || a.Elements() != 6 || a.Begin != 0 || a.End != 24 {
		t.Errorf("a.weight: %+v", a)
	}
	got, err := f.Data("b.bias")
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Errorf("b.bias data %v, %v", got, err)
	}
	if (8+binary.LittleEndian.Uint64(data))%8 != 0 {
		t.Errorf("data section does not start 8-aligned")
	}
	// The file a writer makes from the read tensors is the same file.
	w := NewWriter()
	for k, v := range f.Metadata {
		w.SetMetadata(k, v)
	}
	for _, ti := range f.Tensors {
		d, _ := f.Data(ti.Name)
		if err := w.Add(ti.Name, ti.DType, ti.Shape, d); err != nil {
			t.Fatal(err)
		}
	}
	var again bytes.Buffer
	w.WriteTo(&again)
	if !bytes.Equal(again.Bytes(), data) {
		t.Errorf("rewritten file differs")
	}
}

func TestWriteFileAndOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.safetensors")
	short := NewWriter()
	short.AddFunc("x", F16, []uint64{3}, func(o io.Writer) error { _, err := o.Write([]byte{1}); return err })
	if _, err := short.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "wrote 1 bytes, want 6") {
		t.Errorf("a fill that writes too little: %v", err)
	}
	w := NewWriter()
	if err := w.Add("x", F16, []uint64{3}, []byte{0, 60, 0, 64, 0, 66}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d, err := f.Data("x"); err != nil || len(d) != 6 {
		t.Errorf("x: %v %v", d, err)
	}
	if err := w.WriteFile(t.TempDir()); err == nil {
		t.Errorf("writing over a folder succeeded")
	}
}

func TestWriterRefuses(t *testing.T) {
	w := NewWriter()
	if err := w.Add("x", F32, []uint64{2}, make([]byte, 7)); err == nil {
		t.Error("wrong byte count accepted")
	}
	if err := w.Add("x", "F33", []uint64{2}, make([]byte, 8)); err == nil {
		t.Error("unknown dtype accepted")
	}
	if err := w.Add("x", F32, []uint64{2}, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("x", F32, []uint64{2}, make([]byte, 8)); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := w.Add(MetadataKey, F32, []uint64{2}, make([]byte, 8)); err == nil {
		t.Error("__metadata__ as a tensor name accepted")
	}
}

// TestMalformed feeds the failures the issue names (and their relatives)
// and checks each is a clean error of the right kind with the reason.
func TestMalformed(t *testing.T) {
	good := sample(t)
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	over := make([]byte, 16)
	binary.LittleEndian.PutUint64(over, 9)
	cases := []struct {
		name string
		data []byte
		kind error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "shorter than"},
		{"header length past the end", over, ErrTruncated, "only 8 bytes follow"},
		{"absurd header length", huge, ErrCorrupt, "over the"},
		{"header length zero", raw("", nil), ErrCorrupt, "cannot hold"},
		{"not JSON", raw("[1,2]", nil), ErrCorrupt, "not a JSON object"},
		{"JSON cut", raw(`{"a":{"dtype":"F32"`, nil), ErrCorrupt, "header JSON"},
		{"junk after JSON", raw(`{}x`, nil), ErrCorrupt, "after the header"},
		{"overlapping offsets", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), ErrCorrupt, "inside"},
		{"gap", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), ErrCorrupt, "gap"},
		{"wrong dtype", raw(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrCorrupt, "unknown dtype"},
		{"dtype size mismatch", raw(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrCorrupt, "needs 8 bytes"},
		{"truncated data", good[:len(good)-3], ErrTruncated, "ends at byte"},
		{"extra data", append(append([]byte{}, good...), 0), ErrCorrupt, "after the last tensor"},
		{"unknown field", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), ErrCorrupt, "unknown field"},
		{"missing field", raw(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), ErrCorrupt, "needs dtype"},
		{"duplicate name", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2)), ErrCorrupt, "twice"},
		{"reversed offsets", raw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, nil), ErrCorrupt, "end before"},
		{"negative shape", raw(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, make([]byte, 1)), ErrCorrupt, "tensor \"a\""},
		{"shape overflow", raw(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)), ErrCorrupt, "too large"},
		{"metadata not strings", raw(`{"__metadata__":{"a":1}}`, nil), ErrCorrupt, "__metadata__"},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", c.name, err, c.kind, c.msg)
		}
	}
}

func TestOpenRefusesNonFiles(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("folder opened")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzRead: any bytes either parse into tensors whose data reads back at
// the declared size, and rewrite to a file that parses the same, or fail
// with ErrCorrupt/ErrTruncated; never a panic.
func FuzzRead(f *testing.F) {
	good := sample(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(raw(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(raw(`{"__metadata__":{"format":"pt"}}`, nil))
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<63)
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		w := NewWriter()
		for k, v := range sf.Metadata {
			w.SetMetadata(k, v)
		}
		for _, ti := range sf.Tensors {
			d, err := sf.Data(ti.Name)
			if err != nil || uint64(len(d)) != ti.End-ti.Begin {
				t.Fatalf("tensor %s: %d bytes, %v", ti.Name, len(d), err)
			}
			if err := w.Add(ti.Name, ti.DType, ti.Shape, d); err != nil {
				t.Fatalf("rewrite %s: %v", ti.Name, err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("rewritten file: %v", err)
		}
		if len(again.Tensors) != len(sf.Tensors) {
			t.Fatalf("%d tensors, rewritten %d", len(sf.Tensors), len(again.Tensors))
		}
	})
}
