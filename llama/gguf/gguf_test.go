package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// sampleWriter builds a file that uses every value type, a nested array and
// tensors of odd sizes so that padding matters.
func sampleWriter(t testing.TB) *Writer {
	t.Helper()
	w := NewWriter()
	w.SetString("general.architecture", "test")
	w.SetUint8("u8", 200)
	w.SetInt8("i8", -100)
	w.SetUint16("u16", 60000)
	w.SetInt16("i16", -30000)
	w.SetUint32("u32", 4000000000)
	w.SetInt32("i32", -2000000000)
	w.SetUint64("u64", 1<<63+5)
	w.SetInt64("i64", -1<<62)
	w.SetFloat32("f32", 0.125)
	w.SetFloat64("f64", math.Pi)
	w.SetBool("bool", true)
	w.SetString("str", "héllo\x00world")
	w.SetStrings("strs", []string{"a", "", "ĠThe"})
	w.SetUint32s("u32s", []uint32{1, 2, 3})
	w.SetInt32s("i32s", []int32{-1, 0, 1})
	w.SetFloat32s("f32s", []float32{1.5, -2})
	w.SetArray("u8s", Array{Elem: TypeUint8, Values: []uint8{1, 2}})
	w.SetArray("i8s", Array{Elem: TypeInt8, Values: []int8{-1}})
	w.SetArray("u16s", Array{Elem: TypeUint16, Values: []uint16{7}})
	w.SetArray("i16s", Array{Elem: TypeInt16, Values: []int16{-7}})
	w.SetArray("u64s", Array{Elem: TypeUint64, Values: []uint64{1 << 40}})
	w.SetArray("i64s", Array{Elem: TypeInt64, Values: []int64{-1 << 40}})
	w.SetArray("f64s", Array{Elem: TypeFloat64, Values: []float64{0.1}})
	w.SetArray("bools", Array{Elem: TypeBool, Values: []bool{true, false}})
	w.SetArray("empty", Array{Elem: TypeString, Values: []string{}})
	w.SetArray("nested", Array{Elem: TypeArray, Values: []Array{
		{Elem: TypeUint32, Values: []uint32{1}},
		{Elem: TypeString, Values: []string{"x", "y"}},
	}})
	if err := w.AddF32("a", []uint64{3}, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddF16("b", []uint64{5, 2}, []float32{0, 1, -1, 0.5, 2, 65504, -0.25, 3, 4, 1e-7}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("c", TensorQ8_0, []uint64{32}, make([]byte, 34)); err != nil {
		t.Fatal(err)
	}
	return w
}

func encode(t testing.TB, w *Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestRoundTripMetadata(t *testing.T) {
	w := sampleWriter(t)
	data := encode(t, w)
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != Version {
		t.Errorf("version %d", f.Version)
	}
	if !reflect.DeepEqual(f.KVs, w.kvs) {
		t.Errorf("KVs differ:\n got %#v\nwant %#v", f.KVs, w.kvs)
	}

	checks := []struct {
		key  string
		get  func(string) (any, bool)
		want any
	}{
		{"u8", getter(f.Uint8), uint8(200)},
		{"i8", getter(f.Int8), int8(-100)},
		{"u16", getter(f.Uint16), uint16(60000)},
		{"i16", getter(f.Int16), int16(-30000)},
		{"u32", getter(f.Uint32), uint32(4000000000)},
		{"i32", getter(f.Int32), int32(-2000000000)},
		{"u64", getter(f.Uint64), uint64(1<<63 + 5)},
		{"i64", getter(f.Int64), int64(-1 << 62)},
		{"f32", getter(f.Float32), float32(0.125)},
		{"f64", getter(f.Float64), math.Pi},
		{"bool", getter(f.Bool), true},
		{"str", getter(f.String), "héllo\x00world"},
		{"strs", getter(f.Strings), []string{"a", "", "ĠThe"}},
		{"u32s", getter(f.Uint32s), []uint32{1, 2, 3}},
		{"i32s", getter(f.Int32s), []int32{-1, 0, 1}},
		{"f32s", getter(f.Float32s), []float32{1.5, -2}},
		{"empty", getter(f.Strings), []string{}},
	}
	for _, c := range checks {
		got, ok := c.get(c.key)
		if !ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v (ok=%v), want %#v", c.key, got, ok, c.want)
		}
	}

	// Wrong-type and missing lookups report ok=false rather than a zero value
	// that looks valid.
	if _, ok := f.Uint32("i32"); ok {
		t.Error("Uint32 of an i32 key reported ok")
	}
	if _, ok := f.String("missing"); ok {
		t.Error("missing key reported ok")
	}
	if _, ok := f.Strings("u32s"); ok {
		t.Error("Strings of a u32 array reported ok")
	}
}

// getter adapts a typed File getter to a common signature for table tests.
func getter[T any](fn func(string) (T, bool)) func(string) (any, bool) {
	return func(key string) (any, bool) {
		v, ok := fn(key)
		return v, ok
	}
}

func TestRoundTripTensors(t *testing.T) {
	data := encode(t, sampleWriter(t))
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	ts := f.Tensors()
	wantNames := []string{"a", "b", "c"}
	if len(ts) != len(wantNames) {
		t.Fatalf("got %d tensors", len(ts))
	}
	for i, ti := range ts {
		if ti.Name != wantNames[i] {
			t.Errorf("tensor %d is %q, want %q", i, ti.Name, wantNames[i])
		}
		if ti.FileOffset%DefaultAlignment != 0 || ti.Offset%DefaultAlignment != 0 {
			t.Errorf("tensor %q at %d (data offset %d) is not aligned", ti.Name, ti.FileOffset, ti.Offset)
		}
	}
	if f.DataOffset%DefaultAlignment != 0 {
		t.Errorf("data section at %d is not aligned", f.DataOffset)
	}
	// Tensors are packed back to back with padding, as llama.cpp expects.
	if ts[1].Offset != 32 || ts[2].Offset != 64 {
		t.Errorf("offsets %d, %d; want 32, 64", ts[1].Offset, ts[2].Offset)
	}
	// The last tensor is padded as well: 34 bytes at 64 end at 128.
	if uint64(len(data)) != f.DataOffset+128 {
		t.Errorf("file is %d bytes, want data offset %d + 128", len(data), f.DataOffset)
	}
	// Padding bytes are zero.
	for i := f.DataOffset + 12; i < f.DataOffset+32; i++ {
		if data[i] != 0 {
			t.Fatalf("padding byte at %d is %d", i, data[i])
		}
	}

	b, _ := f.Tensor("b")
	if b.Type != TensorF16 || !reflect.DeepEqual(b.Shape, []uint64{5, 2}) || b.Size != 20 || b.Elements() != 10 {
		t.Errorf("tensor b info %+v", b)
	}
	a, err := f.TensorF32("a")
	if err != nil || !reflect.DeepEqual(a, []float32{1, 2, 3}) {
		t.Errorf("TensorF32(a) = %v, %v", a, err)
	}
	bv, err := f.TensorF32("b")
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 1, -1, 0.5, 2, 65504, -0.25, 3, 4, F16ToFloat32(Float32ToF16(1e-7))}
	if !reflect.DeepEqual(bv, want) {
		t.Errorf("TensorF32(b) = %v, want %v", bv, want)
	}
	raw, err := f.TensorData("c")
	if err != nil || len(raw) != 34 {
		t.Errorf("TensorData(c) = %d bytes, %v", len(raw), err)
	}
	if cv, err := f.TensorF32("c"); err != nil || len(cv) != 32 {
		t.Errorf("TensorF32 of a Q8_0 block: %d values, %v", len(cv), err)
	}
	if _, err := f.TensorData("nope"); err == nil {
		t.Error("TensorData of a missing tensor succeeded")
	}
}

func TestCustomAlignment(t *testing.T) {
	w := NewWriter()
	w.SetUint32(AlignmentKey, 64)
	for _, name := range []string{"x", "y"} {
		if err := w.AddF32(name, []uint64{3}, []float32{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	data := encode(t, w)
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Errorf("alignment %d, data offset %d", f.Alignment, f.DataOffset)
	}
	y, _ := f.Tensor("y")
	if y.Offset != 64 {
		t.Errorf("second tensor at %d, want 64", y.Offset)
	}

	bad := NewWriter()
	bad.SetUint32(AlignmentKey, 48)
	if _, err := bad.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("alignment 48 accepted")
	}
	bad = NewWriter()
	bad.SetUint64(AlignmentKey, 64)
	if _, err := bad.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("u64 alignment accepted")
	}
}

func TestSetKeepsPosition(t *testing.T) {
	w := NewWriter()
	w.SetString("a", "1")
	w.SetString("b", "2")
	w.SetUint32("a", 3)
	data := encode(t, w)
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KVs) != 2 || f.KVs[0].Key != "a" || f.KVs[0].Value != uint32(3) {
		t.Errorf("KVs = %+v", f.KVs)
	}
}

func TestAddTensorErrors(t *testing.T) {
	w := NewWriter()
	if err := w.AddF32("x", []uint64{2}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		tname string
		typ   TensorType
		shape []uint64
		data  []byte
	}{
		{"duplicate", "x", TensorF32, []uint64{1}, make([]byte, 4)},
		{"empty name", "", TensorF32, []uint64{1}, make([]byte, 4)},
		{"long name", strings.Repeat("n", 64), TensorF32, []uint64{1}, make([]byte, 4)},
		{"size mismatch", "y", TensorF32, []uint64{2}, make([]byte, 4)},
		{"zero dim", "y", TensorF32, []uint64{0}, nil},
		{"no dims", "y", TensorF32, nil, nil},
		{"five dims", "y", TensorF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)},
		{"unknown type", "y", TensorType(4), []uint64{1}, make([]byte, 4)},
		{"partial block", "y", TensorQ4_0, []uint64{16}, make([]byte, 9)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := w.AddTensor(c.tname, c.typ, c.shape, c.data); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestWriteMismatchedArray(t *testing.T) {
	w := NewWriter()
	w.SetArray("k", Array{Elem: TypeUint32, Values: []int32{1}})
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("want error naming the key, got %v", err)
	}
}

func TestWriteFileAndOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := sampleWriter(t)
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	// Overwriting goes through a rename as well and leaves no temp files.
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Path != path {
		t.Errorf("Path = %q", f.Path)
	}
	if v, ok := f.String("general.architecture"); !ok || v != "test" {
		t.Errorf("architecture %q %v", v, ok)
	}
	if _, err := f.TensorF32("a"); err != nil {
		t.Error(err)
	}
	if err := w.WriteFile(filepath.Join(dir, "missing", "m.gguf")); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

// header builds the start of a file by hand for corruption tests.
func header(version uint32, nTensors, nKV uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, nTensors)
	return binary.LittleEndian.AppendUint64(b, nKV)
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func TestBadInputs(t *testing.T) {
	valid := encode(t, sampleWriter(t))

	kvU32 := func(key string, typ uint32, rest ...byte) []byte {
		b := appendStr(nil, key)
		b = binary.LittleEndian.AppendUint32(b, typ)
		return append(b, rest...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	pad := make([]byte, 64)

	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotGGUF},
		{"short", []byte("GG"), ErrNotGGUF},
		{"bad magic", []byte("GGML0000000000000000000000000000"), ErrNotGGUF},
		{"version 1", header(1, 0, 0), ErrVersion},
		{"version 4", header(4, 0, 0), ErrVersion},
		{"big endian", header(3<<24, 0, 0), ErrVersion},
		{"truncated header", header(3, 0, 0)[:20], ErrTruncated},
		{"absurd kv count", header(3, 0, 1<<60), ErrCorrupt},
		{"absurd tensor count", header(3, 1<<62, 0), ErrCorrupt},
		{"absurd string length", cat(header(3, 0, 1), u64(1<<62), pad), ErrTruncated},
		{"absurd array count", cat(header(3, 0, 1), kvU32("k", uint32(TypeArray)), u32(uint32(TypeUint32)), u64(1<<61), pad), ErrCorrupt},
		{"unknown value type", cat(header(3, 0, 1), kvU32("k", 13), pad), ErrCorrupt},
		{"unknown array type", cat(header(3, 0, 1), kvU32("k", uint32(TypeArray)), u32(99), u64(1), pad), ErrCorrupt},
		{"duplicate key", cat(header(3, 0, 2), kvU32("k", uint32(TypeUint8), 1), kvU32("k", uint32(TypeUint8), 1)), ErrCorrupt},
		{"bad alignment", cat(header(3, 0, 1), kvU32(AlignmentKey, uint32(TypeUint32), 3, 0, 0, 0)), ErrCorrupt},
		{"zero dims", cat(header(3, 1, 0), appendStr(nil, "t"), u32(0), u32(0), u64(0), pad), ErrCorrupt},
		{"unknown tensor type", cat(header(3, 1, 0), appendStr(nil, "t"), u32(1), u64(1), u32(5), u64(0), pad), ErrCorrupt},
		{"misaligned offset", cat(header(3, 1, 0), appendStr(nil, "t"), u32(1), u64(1), u32(0), u64(4), pad), ErrCorrupt},
		{"huge shape", cat(header(3, 1, 0), appendStr(nil, "t"), u32(2), u64(1<<40), u64(1<<40), u32(0), u64(0), pad), ErrCorrupt},
		{"data beyond EOF", cat(header(3, 1, 0), appendStr(nil, "t"), u32(1), u64(1000), u32(0), u64(0), pad), ErrTruncated},
		{"huge offset", cat(header(3, 1, 0), appendStr(nil, "t"), u32(1), u64(1), u32(0), u64(1<<63), pad), ErrCorrupt},
		{"truncated tensor data", valid[:len(valid)-40], ErrTruncated},
		{"truncated in metadata", valid[:700], ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), "<input>") {
				t.Errorf("error does not name the input: %v", err)
			}
		})
	}
}

// Every prefix of a valid file must fail cleanly rather than panic or parse.
func TestEveryTruncation(t *testing.T) {
	data := encode(t, sampleWriter(t))
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	last, _ := f.Tensor("c")
	end := int(last.FileOffset + last.Size) // the final padding is optional
	if _, err := Read(bytes.NewReader(data[:end]), int64(end)); err != nil {
		t.Fatalf("file without final padding: %v", err)
	}
	for n := 0; n < end; n++ {
		if _, err := Read(bytes.NewReader(data[:n]), int64(n)); err == nil {
			t.Fatalf("prefix of %d bytes parsed", n)
		}
	}
}

func TestOpenNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.gguf")
	if err := os.WriteFile(path, []byte("not a model at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if !errors.Is(err, ErrNotGGUF) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("opening a missing file succeeded")
	}
}

func TestF16Conversion(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                    // largest finite half
		{65520, 0x7c00},                    // rounds up to infinity
		{1e10, 0x7c00},                     // overflow
		{float32(math.Inf(-1)), 0xfc00},    // infinity keeps its sign
		{6.103515625e-05, 0x0400},          // smallest normal
		{5.960464477539063e-08, 0x0001},    // smallest subnormal 2^-24
		{2.9802322387695312e-08, 0x0000},   // 2^-25 ties to even (zero)
		{4.470348358154297e-08, 0x0001},    // 1.5 * 2^-25 rounds up
		{1e-10, 0x0000},                    // underflow
		{1 + 1.0/2048, 0x3c00},             // tie rounds to even (down)
		{1 + 3.0/2048, 0x3c02},             // tie rounds to even (up)
		{1 + 1.0/2048 + 1.0/65536, 0x3c01}, // above the tie rounds up
		{0.1, 0x2e66},
	}
	for _, c := range cases {
		if got := Float32ToF16(c.in); got != c.want {
			t.Errorf("Float32ToF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if h := Float32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN converted to %#04x", h)
	}

	// Every half value survives half -> float32 -> half exactly.
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("%#04x decoded to NaN", h)
			}
			continue
		}
		if back := Float32ToF16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
	if F16ToFloat32(0x0001) != float32(math.Ldexp(1, -24)) || F16ToFloat32(0x3555) != 0.333251953125 {
		t.Error("F16ToFloat32 values wrong")
	}
	if BF16ToFloat32(0x3f80) != 1 {
		t.Error("BF16ToFloat32(0x3f80) != 1")
	}
}

func TestQuantizeRoundTrip(t *testing.T) {
	x := make([]float32, 4*BlockSize)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%7)
	}
	x[5] = 0
	for _, c := range []struct {
		typ   TensorType
		quant func([]float32) ([]byte, error)
		tol   float64 // relative to each block's largest magnitude
	}{{TensorQ8_0, QuantizeQ8_0, 1.0 / 127}, {TensorQ4_0, QuantizeQ4_0, 1.0 / 8}} {
		data, err := c.quant(x)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter()
		if err := w.AddTensor("q", c.typ, []uint64{BlockSize, 4}, data); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "q.gguf")
		if err := w.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := f.TensorF32("q")
		f.Close()
		if err != nil || len(back) != len(x) {
			t.Fatalf("%s: %d values, %v", c.typ, len(back), err)
		}
		for b := 0; b < len(x); b += BlockSize {
			amax := 0.0
			for _, v := range x[b : b+BlockSize] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			for i := b; i < b+BlockSize; i++ {
				if d := math.Abs(float64(back[i] - x[i])); d > c.tol*amax*1.01+1e-6 {
					t.Fatalf("%s: value %d: %g decoded as %g", c.typ, i, x[i], back[i])
				}
			}
		}
	}
	if _, err := QuantizeQ8_0(make([]float32, 33)); err == nil {
		t.Error("Q8_0 of 33 values accepted")
	}
	// Types without a decoder are refused by name.
	w := NewWriter()
	w.AddTensor("k", TensorQ4_K, []uint64{256}, make([]byte, 144))
	p := filepath.Join(t.TempDir(), "k.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.TensorF32("k"); err == nil || !strings.Contains(err.Error(), "Q4_K") {
		t.Errorf("TensorF32 of Q4_K should fail naming the type, got %v", err)
	}
}

// TestZeroTensors: zero tensors written to a file are holes (no disk
// blocks), the file has its full length even when a hole ends it, and the
// bytes read back are the same as a buffer write of explicit zeros.
func TestZeroTensors(t *testing.T) {
	build := func() *Writer {
		w := NewWriter()
		w.SetString("general.architecture", "test")
		if err := w.AddF32("small", []uint64{3}, []float32{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"big", "last"} {
			if err := w.AddZeroTensor(name, TensorF32, []uint64{1 << 20}); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	var buf bytes.Buffer
	if _, err := build().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "z.gguf")
	if err := build().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, buf.Bytes()) {
		t.Fatalf("file (%d bytes) differs from the buffer write (%d bytes)", len(disk), buf.Len())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > int64(len(disk))/4 {
		t.Errorf("%d bytes on disk for a %d-byte file of holes", used, len(disk))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.TensorF32("last")
	if err != nil || len(v) != 1<<20 || v[len(v)-1] != 0 {
		t.Errorf("last tensor: %d values, %v", len(v), err)
	}
}
