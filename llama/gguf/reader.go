package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Errors that classify why a file could not be read; test with errors.Is.
// The returned errors also name the file and the byte offset involved.
var (
	// ErrNotGGUF means the file does not start with the GGUF magic.
	ErrNotGGUF = errors.New("not a GGUF file")
	// ErrVersion means the file uses a GGUF version this package cannot read.
	ErrVersion = errors.New("unsupported GGUF version")
	// ErrTruncated means the file ends before the data it declares.
	ErrTruncated = errors.New("truncated GGUF file")
	// ErrCorrupt means the file is structurally invalid: impossible counts,
	// unknown types, duplicate names, misaligned offsets and the like.
	ErrCorrupt = errors.New("corrupt GGUF file")
)

// TensorInfo describes one tensor of a parsed file.
type TensorInfo struct {
	Name string
	Type TensorType
	// Shape is in ggml ne order: Shape[0] is the fastest-varying dimension.
	Shape []uint64
	// Offset is relative to the start of the data section, as stored.
	Offset uint64
	// FileOffset is the absolute position of the data in the file.
	FileOffset uint64
	// Size is the data size in bytes.
	Size uint64
}

// Elements returns the number of elements in the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Metadata and tensor descriptions are held in
// memory; tensor data is read on demand.
type File struct {
	// Path names the file in error messages; it is empty for Read unless set.
	Path string
	// Version is the GGUF version found in the header.
	Version uint32
	// KVs are the metadata entries in file order.
	KVs []KV
	// Alignment is the tensor data alignment (general.alignment or 32).
	Alignment uint64
	// DataOffset is where the tensor data section starts.
	DataOffset uint64
	// Size is the total file size in bytes.
	Size int64

	tensors []TensorInfo
	kvIndex map[string]int
	tIndex  map[string]int
	r       io.ReaderAt
	closer  io.Closer
}

// Open parses the GGUF file at path. The file stays open so tensor data can
// be read later; call Close when done.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f, err := parse(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Read parses a GGUF file of the given size from r. Errors call the input
// "<input>"; use Open for errors naming a path.
func Read(r io.ReaderAt, size int64) (*File, error) {
	return parse("", r, size)
}

// Close releases the file opened by Open; it is a no-op for Read.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

func (f *File) name() string {
	if f.Path == "" {
		return "<input>"
	}
	return f.Path
}

// parser reads the header sequentially and checks every length against the
// bytes that remain, so corrupt counts fail before anything is allocated.
type parser struct {
	name string
	br   *bufio.Reader
	pos  int64
	size int64
}

func (p *parser) fail(kind error, format string, args ...any) error {
	return fmt.Errorf("gguf: %s: offset %d: %w: %s", p.name, p.pos, kind, fmt.Sprintf(format, args...))
}

func (p *parser) remaining() int64 { return p.size - p.pos }

// read returns the next n bytes; what is being read appears in the error.
func (p *parser) read(n int64, what string) ([]byte, error) {
	if n > p.remaining() {
		return nil, p.fail(ErrTruncated, "%s needs %d bytes, only %d left", what, n, p.remaining())
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.br, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, p.fail(ErrTruncated, "%s: %v", what, err)
		}
		return nil, fmt.Errorf("gguf: %s: offset %d: reading %s: %w", p.name, p.pos, what, err)
	}
	p.pos += n
	return buf, nil
}

func (p *parser) u32(what string) (uint32, error) {
	b, err := p.read(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64(what string) (uint64, error) {
	b, err := p.read(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (p *parser) str(what string) (string, error) {
	n, err := p.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(p.remaining()) {
		return "", p.fail(ErrTruncated, "%s claims %d bytes, only %d left", what, n, p.remaining())
	}
	b, err := p.read(int64(n), what)
	return string(b), err
}

// count reads an element count and rejects it unless n elements of at least
// minSize bytes each fit in the rest of the file.
func (p *parser) count(what string, minSize int64) (uint64, error) {
	n, err := p.u64(what)
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > uint64(p.remaining()/minSize) {
		return 0, p.fail(ErrCorrupt, "%s is %d, but only %d bytes remain", what, n, p.remaining())
	}
	return n, nil
}

func parse(path string, r io.ReaderAt, size int64) (*File, error) {
	f := &File{Path: path, Size: size, r: r, kvIndex: map[string]int{}, tIndex: map[string]int{}}
	p := &parser{name: f.name(), br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}

	if size < 4 {
		return nil, p.fail(ErrNotGGUF, "file is only %d bytes", size)
	}
	m, err := p.read(4, "magic")
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(m) != magic {
		return nil, p.fail(ErrNotGGUF, "magic is %q, want \"GGUF\"", m)
	}
	if f.Version, err = p.u32("version"); err != nil {
		return nil, err
	}
	if f.Version < 2 || f.Version > Version {
		hint := ""
		if f.Version&0xffff == 0 {
			hint = " (big-endian file?)"
		}
		return nil, p.fail(ErrVersion, "version %d%s, want 2 or 3", f.Version, hint)
	}
	// Minimal encodings: a key is a length, a type and one byte of value; a
	// tensor info is a name length, a dimension count, a type and an offset.
	const minKV, minTensor = 8 + 4 + 1, 8 + 4 + 4 + 8
	nTensors, err := p.count("tensor count", minTensor)
	if err != nil {
		return nil, err
	}
	nKV, err := p.count("metadata key count", minKV)
	if err != nil {
		return nil, err
	}
	if nKV*minKV+nTensors*minTensor > uint64(p.remaining()) {
		return nil, p.fail(ErrCorrupt, "%d keys and %d tensors cannot fit in %d bytes", nKV, nTensors, p.remaining())
	}

	// Slices grow with what is actually parsed rather than with the claimed
	// counts, so memory stays proportional to the bytes really present.
	for i := uint64(0); i < nKV; i++ {
		kv, err := p.kv(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.kvIndex[kv.Key]; dup {
			return nil, p.fail(ErrCorrupt, "duplicate key %q", kv.Key)
		}
		f.kvIndex[kv.Key] = len(f.KVs)
		f.KVs = append(f.KVs, kv)
	}

	f.Alignment = DefaultAlignment
	if kv, ok := f.Lookup(AlignmentKey); ok {
		a, isU32 := kv.Value.(uint32)
		if !isU32 || !validAlignment(uint64(a)) {
			return nil, p.fail(ErrCorrupt, "%s must be a u32 power of two, got %s %v", AlignmentKey, kv.Type, kv.Value)
		}
		f.Alignment = uint64(a)
	}

	for i := uint64(0); i < nTensors; i++ {
		t, err := p.tensorInfo(i, f.Alignment)
		if err != nil {
			return nil, err
		}
		if _, dup := f.tIndex[t.Name]; dup {
			return nil, p.fail(ErrCorrupt, "duplicate tensor %q", t.Name)
		}
		f.tIndex[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}

	f.DataOffset = alignUp(uint64(p.pos), f.Alignment)
	for i := range f.tensors {
		t := &f.tensors[i]
		t.FileOffset = f.DataOffset + t.Offset
		// Offsets are below 2^63 and sizes below 2^63, so the sums cannot
		// wrap around.
		if t.FileOffset < t.Offset || t.FileOffset+t.Size > uint64(size) {
			return nil, fmt.Errorf("gguf: %s: %w: data of tensor %q (%d bytes at offset %d) extends beyond the end of the file (%d bytes)",
				f.name(), ErrTruncated, t.Name, t.Size, t.FileOffset, size)
		}
	}
	return f, nil
}

func (p *parser) kv(i uint64) (KV, error) {
	key, err := p.str(fmt.Sprintf("key %d", i))
	if err != nil {
		return KV{}, err
	}
	what := fmt.Sprintf("value of key %q", key)
	t, err := p.u32(what + " type")
	if err != nil {
		return KV{}, err
	}
	v, err := p.value(ValueType(t), what, 0)
	if err != nil {
		return KV{}, err
	}
	return KV{Key: key, Type: ValueType(t), Value: v}, nil
}

// value decodes one value of type t.
func (p *parser) value(t ValueType, what string, depth int) (any, error) {
	if t == TypeArray {
		return p.array(what, depth+1)
	}
	if t == TypeString {
		return p.str(what)
	}
	size := t.fixedSize()
	if size == 0 {
		return nil, p.fail(ErrCorrupt, "%s has unknown type %d", what, uint32(t))
	}
	b, err := p.read(int64(size), what)
	if err != nil {
		return nil, err
	}
	return decodeScalar(t, b), nil
}

func decodeScalar(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0]
	case TypeInt8:
		return int8(b[0])
	case TypeBool:
		return b[0] != 0
	case TypeUint16:
		return le.Uint16(b)
	case TypeInt16:
		return int16(le.Uint16(b))
	case TypeUint32:
		return le.Uint32(b)
	case TypeInt32:
		return int32(le.Uint32(b))
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b))
	case TypeUint64:
		return le.Uint64(b)
	case TypeInt64:
		return int64(le.Uint64(b))
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

func (p *parser) array(what string, depth int) (Array, error) {
	if depth > maxNesting {
		return Array{}, p.fail(ErrCorrupt, "%s nests arrays deeper than %d", what, maxNesting)
	}
	et, err := p.u32(what + " element type")
	if err != nil {
		return Array{}, err
	}
	elem := ValueType(et)
	minSize := int64(elem.minEncodedSize())
	if minSize == 0 {
		return Array{}, p.fail(ErrCorrupt, "%s has unknown element type %d", what, et)
	}
	n, err := p.count(what+" element count", minSize)
	if err != nil {
		return Array{}, err
	}

	switch elem {
	case TypeString:
		vs := []string{}
		for range n {
			s, err := p.str(what)
			if err != nil {
				return Array{}, err
			}
			vs = append(vs, s)
		}
		return Array{Elem: elem, Values: vs}, nil
	case TypeArray:
		vs := []Array{}
		for range n {
			a, err := p.array(what, depth+1)
			if err != nil {
				return Array{}, err
			}
			vs = append(vs, a)
		}
		return Array{Elem: elem, Values: vs}, nil
	}

	// Fixed-size elements: the count check above bounds this read by the
	// file size.
	b, err := p.read(int64(n)*minSize, what)
	if err != nil {
		return Array{}, err
	}
	return Array{Elem: elem, Values: decodeFixedArray(elem, b, int(n))}, nil
}

func decodeFixedArray(t ValueType, b []byte, n int) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b
	case TypeInt8:
		vs := make([]int8, n)
		for i := range vs {
			vs[i] = int8(b[i])
		}
		return vs
	case TypeBool:
		vs := make([]bool, n)
		for i := range vs {
			vs[i] = b[i] != 0
		}
		return vs
	case TypeUint16:
		vs := make([]uint16, n)
		for i := range vs {
			vs[i] = le.Uint16(b[2*i:])
		}
		return vs
	case TypeInt16:
		vs := make([]int16, n)
		for i := range vs {
			vs[i] = int16(le.Uint16(b[2*i:]))
		}
		return vs
	case TypeUint32:
		vs := make([]uint32, n)
		for i := range vs {
			vs[i] = le.Uint32(b[4*i:])
		}
		return vs
	case TypeInt32:
		vs := make([]int32, n)
		for i := range vs {
			vs[i] = int32(le.Uint32(b[4*i:]))
		}
		return vs
	case TypeFloat32:
		vs := make([]float32, n)
		for i := range vs {
			vs[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return vs
	case TypeUint64:
		vs := make([]uint64, n)
		for i := range vs {
			vs[i] = le.Uint64(b[8*i:])
		}
		return vs
	case TypeInt64:
		vs := make([]int64, n)
		for i := range vs {
			vs[i] = int64(le.Uint64(b[8*i:]))
		}
		return vs
	case TypeFloat64:
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return vs
	}
	return nil
}

func (p *parser) tensorInfo(i uint64, align uint64) (TensorInfo, error) {
	name, err := p.str(fmt.Sprintf("name of tensor %d", i))
	if err != nil {
		return TensorInfo{}, err
	}
	what := fmt.Sprintf("tensor %q", name)
	nDims, err := p.u32(what + " dimension count")
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims == 0 || nDims > maxDims {
		return TensorInfo{}, p.fail(ErrCorrupt, "%s has %d dimensions, want 1 to %d", what, nDims, maxDims)
	}
	shape := make([]uint64, nDims)
	for j := range shape {
		if shape[j], err = p.u64(what + " shape"); err != nil {
			return TensorInfo{}, err
		}
	}
	typ, err := p.u32(what + " type")
	if err != nil {
		return TensorInfo{}, err
	}
	size, err := tensorSize(TensorType(typ), shape)
	if err != nil {
		return TensorInfo{}, p.fail(ErrCorrupt, "%s: %v", what, err)
	}
	off, err := p.u64(what + " offset")
	if err != nil {
		return TensorInfo{}, err
	}
	if off%align != 0 {
		return TensorInfo{}, p.fail(ErrCorrupt, "%s offset %d is not a multiple of the alignment %d", what, off, align)
	}
	if off >= 1<<63 {
		return TensorInfo{}, p.fail(ErrCorrupt, "%s offset %d is impossible", what, off)
	}
	return TensorInfo{Name: name, Type: TensorType(typ), Shape: shape, Offset: off, Size: size}, nil
}

// Lookup returns the metadata entry for key.
func (f *File) Lookup(key string) (KV, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return KV{}, false
	}
	return f.KVs[i], true
}

// scalar returns the value of key when it exists and has Go type T.
func scalar[T any](f *File, key string) (T, bool) {
	var zero T
	kv, ok := f.Lookup(key)
	if !ok {
		return zero, false
	}
	v, ok := kv.Value.(T)
	return v, ok
}

// slice returns the elements of the array at key when it exists and its
// elements have Go type T.
func slice[T any](f *File, key string) ([]T, bool) {
	kv, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	a, ok := kv.Value.(Array)
	if !ok {
		return nil, false
	}
	vs, ok := a.Values.([]T)
	return vs, ok
}

// String returns the string at key; ok is false if absent or of another type.
func (f *File) String(key string) (string, bool) { return scalar[string](f, key) }

// Uint8 returns the u8 at key; ok is false if absent or of another type.
func (f *File) Uint8(key string) (uint8, bool) { return scalar[uint8](f, key) }

// Int8 returns the i8 at key; ok is false if absent or of another type.
func (f *File) Int8(key string) (int8, bool) { return scalar[int8](f, key) }

// Uint16 returns the u16 at key; ok is false if absent or of another type.
func (f *File) Uint16(key string) (uint16, bool) { return scalar[uint16](f, key) }

// Int16 returns the i16 at key; ok is false if absent or of another type.
func (f *File) Int16(key string) (int16, bool) { return scalar[int16](f, key) }

// Uint32 returns the u32 at key; ok is false if absent or of another type.
func (f *File) Uint32(key string) (uint32, bool) { return scalar[uint32](f, key) }

// Int32 returns the i32 at key; ok is false if absent or of another type.
func (f *File) Int32(key string) (int32, bool) { return scalar[int32](f, key) }

// Uint64 returns the u64 at key; ok is false if absent or of another type.
func (f *File) Uint64(key string) (uint64, bool) { return scalar[uint64](f, key) }

// Int64 returns the i64 at key; ok is false if absent or of another type.
func (f *File) Int64(key string) (int64, bool) { return scalar[int64](f, key) }

// Float32 returns the f32 at key; ok is false if absent or of another type.
func (f *File) Float32(key string) (float32, bool) { return scalar[float32](f, key) }

// Float64 returns the f64 at key; ok is false if absent or of another type.
func (f *File) Float64(key string) (float64, bool) { return scalar[float64](f, key) }

// Bool returns the bool at key; ok is false if absent or of another type.
func (f *File) Bool(key string) (bool, bool) { return scalar[bool](f, key) }

// Strings returns the string array at key; ok is false if absent or of
// another type.
func (f *File) Strings(key string) ([]string, bool) { return slice[string](f, key) }

// Uint32s returns the u32 array at key; ok is false if absent or of another
// type.
func (f *File) Uint32s(key string) ([]uint32, bool) { return slice[uint32](f, key) }

// Int32s returns the i32 array at key; ok is false if absent or of another
// type.
func (f *File) Int32s(key string) ([]int32, bool) { return slice[int32](f, key) }

// Float32s returns the f32 array at key; ok is false if absent or of another
// type.
func (f *File) Float32s(key string) ([]float32, bool) { return slice[float32](f, key) }

// Tensors returns the tensor descriptions in file order.
func (f *File) Tensors() []TensorInfo {
	return append([]TensorInfo(nil), f.tensors...)
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// TensorData reads the raw bytes of the named tensor.
func (f *File) TensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %s: no tensor %q", f.name(), name)
	}
	if f.r == nil {
		return nil, fmt.Errorf("gguf: %s: file is closed", f.name())
	}
	buf := make([]byte, t.Size)
	if _, err := f.r.ReadAt(buf, int64(t.FileOffset)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("gguf: %s: %w: tensor %q data", f.name(), ErrTruncated, name)
		}
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.name(), name, err)
	}
	return buf, nil
}

// TensorBytes reads n bytes of the named tensor's data from byte off of it
// (fewer where the data ends first).
func (f *File) TensorBytes(name string, off, n uint64) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %s: no tensor %q", f.name(), name)
	}
	if f.r == nil {
		return nil, fmt.Errorf("gguf: %s: file is closed", f.name())
	}
	if off >= t.Size {
		return nil, nil
	}
	n = min(n, t.Size-off)
	buf := make([]byte, n)
	if _, err := f.r.ReadAt(buf, int64(t.FileOffset+off)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("gguf: %s: %w: tensor %q data", f.name(), ErrTruncated, name)
		}
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.name(), name, err)
	}
	return buf, nil
}

// TensorF32 reads the named tensor as float32 values in ggml order; it
// decodes F32, F16, BF16, Q8_0 and Q4_0 tensors.
func (f *File) TensorF32(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %s: no tensor %q", f.name(), name)
	}
	switch t.Type {
	case TensorF32, TensorF16, TensorBF16, TensorQ8_0, TensorQ4_0:
	default:
		return nil, fmt.Errorf("gguf: %s: tensor %q has type %s; only F32, F16, BF16, Q8_0 and Q4_0 can be decoded", f.name(), name, t.Type)
	}
	b, err := f.TensorData(name)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch t.Type {
	case TensorQ8_0, TensorQ4_0:
		n := 1
		for _, d := range t.Shape {
			n *= int(d)
		}
		out, err := dequantize(t.Type, b, n)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", f.name(), name, err)
		}
		return out, nil
	case TensorF32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case TensorF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = F16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out, nil
	default:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = BF16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out, nil
	}
}
