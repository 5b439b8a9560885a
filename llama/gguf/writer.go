package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Writer collects metadata and tensors in memory and encodes them as one
// GGUF file. Keys and tensors are written in the order they were first set
// or added, so the same sequence of calls always gives the same bytes.
//
// Tensor data slices are kept by reference until the file is written; the
// caller must not modify them in between.
type Writer struct {
	kvs     []KV
	kvIndex map[string]int
	tensors []writerTensor
	tIndex  map[string]int
}

type writerTensor struct {
	name  string
	typ   TensorType
	shape []uint64
	data  []byte
	// size and fill stand in for data when the tensor is produced while the
	// file is written (AddTensorFunc), so huge models never sit in memory.
	size uint64
	fill func(io.Writer) error
	// zero: the tensor's bytes are all zero (AddZeroTensor)
	zero bool
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{kvIndex: map[string]int{}, tIndex: map[string]int{}}
}

// set stores a value; setting an existing key replaces its value but keeps
// its original position, so callers can fill defaults first and override
// them later without reordering the file.
func (w *Writer) set(key string, typ ValueType, v any) {
	if i, ok := w.kvIndex[key]; ok {
		w.kvs[i] = KV{Key: key, Type: typ, Value: v}
		return
	}
	w.kvIndex[key] = len(w.kvs)
	w.kvs = append(w.kvs, KV{Key: key, Type: typ, Value: v})
}

// SetKV sets a metadata entry as read from a File (to copy metadata from
// one file to another). A value that does not match its type is reported
// when the file is written.
func (w *Writer) SetKV(kv KV) { w.set(kv.Key, kv.Type, kv.Value) }

// SetUint8 sets key to a u8 value.
func (w *Writer) SetUint8(key string, v uint8) { w.set(key, TypeUint8, v) }

// SetInt8 sets key to an i8 value.
func (w *Writer) SetInt8(key string, v int8) { w.set(key, TypeInt8, v) }

// SetUint16 sets key to a u16 value.
func (w *Writer) SetUint16(key string, v uint16) { w.set(key, TypeUint16, v) }

// SetInt16 sets key to an i16 value.
func (w *Writer) SetInt16(key string, v int16) { w.set(key, TypeInt16, v) }

// SetUint32 sets key to a u32 value. llama.cpp reads integer
// hyper-parameters only as u32.
func (w *Writer) SetUint32(key string, v uint32) { w.set(key, TypeUint32, v) }

// SetInt32 sets key to an i32 value.
func (w *Writer) SetInt32(key string, v int32) { w.set(key, TypeInt32, v) }

// SetUint64 sets key to a u64 value.
func (w *Writer) SetUint64(key string, v uint64) { w.set(key, TypeUint64, v) }

// SetInt64 sets key to an i64 value.
func (w *Writer) SetInt64(key string, v int64) { w.set(key, TypeInt64, v) }

// SetFloat32 sets key to an f32 value.
func (w *Writer) SetFloat32(key string, v float32) { w.set(key, TypeFloat32, v) }

// SetFloat64 sets key to an f64 value.
func (w *Writer) SetFloat64(key string, v float64) { w.set(key, TypeFloat64, v) }

// SetBool sets key to a bool value.
func (w *Writer) SetBool(key string, v bool) { w.set(key, TypeBool, v) }

// SetString sets key to a string value.
func (w *Writer) SetString(key string, v string) { w.set(key, TypeString, v) }

// SetStrings sets key to an array of strings.
func (w *Writer) SetStrings(key string, v []string) {
	w.SetArray(key, Array{Elem: TypeString, Values: v})
}

// SetUint32s sets key to an array of u32.
func (w *Writer) SetUint32s(key string, v []uint32) {
	w.SetArray(key, Array{Elem: TypeUint32, Values: v})
}

// SetInt32s sets key to an array of i32.
func (w *Writer) SetInt32s(key string, v []int32) {
	w.SetArray(key, Array{Elem: TypeInt32, Values: v})
}

// SetFloat32s sets key to an array of f32.
func (w *Writer) SetFloat32s(key string, v []float32) {
	w.SetArray(key, Array{Elem: TypeFloat32, Values: v})
}

// SetArray sets key to an arbitrary array, including nested arrays. A
// mismatch between a.Elem and the Go type of a.Values is reported when the
// file is written.
func (w *Writer) SetArray(key string, a Array) { w.set(key, TypeArray, a) }

// AddTensor appends a tensor. shape is in ggml ne order (fastest-varying
// dimension first) and data must hold exactly the bytes that type and shape
// imply. Names must be unique and shorter than 64 bytes (ggml's limit).
func (w *Writer) AddTensor(name string, typ TensorType, shape []uint64, data []byte) error {
	size, err := w.checkTensor(name, typ, shape)
	if err != nil {
		return err
	}
	if uint64(len(data)) != size {
		return fmt.Errorf("gguf: tensor %q: %s %v needs %d bytes, got %d", name, typ, shape, size, len(data))
	}
	w.tIndex[name] = len(w.tensors)
	w.tensors = append(w.tensors, writerTensor{name: name, typ: typ, shape: append([]uint64(nil), shape...), data: data, size: size})
	return nil
}

// AddTensorFunc appends a tensor whose bytes fill writes to its io.Writer
// when the file is written, in file order. Only the header is kept in
// memory, which is what lets a multi-gigabyte model be streamed to disk. fill
// must write exactly the bytes that typ and shape imply; more or fewer fail
// the write.
func (w *Writer) AddTensorFunc(name string, typ TensorType, shape []uint64, fill func(io.Writer) error) error {
	if fill == nil {
		return fmt.Errorf("gguf: tensor %q: no fill function", name)
	}
	size, err := w.checkTensor(name, typ, shape)
	if err != nil {
		return err
	}
	w.tIndex[name] = len(w.tensors)
	w.tensors = append(w.tensors, writerTensor{name: name, typ: typ, shape: append([]uint64(nil), shape...), size: size, fill: fill})
	return nil
}

// AddZeroTensor appends a tensor whose bytes are all zero. When the file is
// written to an *os.File (WriteFile) they are left as a hole, so the file
// takes no disk space or time for them: a model of any size can be written
// in milliseconds for checks that read only its shapes (graph checks with
// llama.cpp's no_alloc).
func (w *Writer) AddZeroTensor(name string, typ TensorType, shape []uint64) error {
	size, err := w.checkTensor(name, typ, shape)
	if err != nil {
		return err
	}
	w.tIndex[name] = len(w.tensors)
	w.tensors = append(w.tensors, writerTensor{name: name, typ: typ, shape: append([]uint64(nil), shape...), size: size, zero: true})
	return nil
}

// checkTensor validates a new tensor's name and shape and returns its size
// in bytes.
func (w *Writer) checkTensor(name string, typ TensorType, shape []uint64) (uint64, error) {
	if name == "" {
		return 0, errors.New("gguf: tensor name is empty")
	}
	if len(name) > maxTensorName {
		return 0, fmt.Errorf("gguf: tensor %q: name is %d bytes, at most %d allowed", name, len(name), maxTensorName)
	}
	if _, dup := w.tIndex[name]; dup {
		return 0, fmt.Errorf("gguf: tensor %q added twice", name)
	}
	for _, d := range shape {
		if d == 0 {
			return 0, fmt.Errorf("gguf: tensor %q: shape %v has a zero dimension", name, shape)
		}
	}
	size, err := tensorSize(typ, shape)
	if err != nil {
		return 0, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return size, nil
}

// AddF32 appends an F32 tensor holding values.
func (w *Writer) AddF32(name string, shape []uint64, values []float32) error {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return w.AddTensor(name, TensorF32, shape, data)
}

// AddF16 appends an F16 tensor holding values rounded to half precision.
func (w *Writer) AddF16(name string, shape []uint64, values []float32) error {
	data := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(data[2*i:], Float32ToF16(v))
	}
	return w.AddTensor(name, TensorF16, shape, data)
}

// alignment returns the data alignment the file will declare.
func (w *Writer) alignment() (uint64, error) {
	i, ok := w.kvIndex[AlignmentKey]
	if !ok {
		return DefaultAlignment, nil
	}
	kv := w.kvs[i]
	v, isU32 := kv.Value.(uint32)
	if kv.Type != TypeUint32 || !isU32 {
		return 0, fmt.Errorf("gguf: %s must be a u32, got %s", AlignmentKey, kv.Type)
	}
	if !validAlignment(uint64(v)) {
		return 0, fmt.Errorf("gguf: %s = %d is not a power of two", AlignmentKey, v)
	}
	return uint64(v), nil
}

// WriteTo encodes the file to out. It implements io.WriterTo.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: bufio.NewWriterSize(out, 1<<16)}
	e := encoder{w: cw}

	e.u32(magic)
	e.u32(Version)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Type))
		if err := e.value(kv.Type, kv.Value, 0); err != nil {
			return cw.n, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}

	// Tensors are laid out back to back in insertion order, each padded to
	// the alignment; llama.cpp requires exactly this layout.
	var offset uint64
	for _, t := range w.tensors {
		e.str(t.name)
		e.u32(uint32(len(t.shape)))
		for _, d := range t.shape {
			e.u64(d)
		}
		e.u32(uint32(t.typ))
		e.u64(offset)
		offset = alignUp(offset+t.size, align)
	}

	e.pad(align)
	holes := false
	for _, t := range w.tensors {
		switch {
		case t.zero:
			holes = e.skip(out, t.size) || holes
		case t.fill != nil:
			e.stream(t)
		default:
			e.bytes(t.data)
		}
		e.pad(align)
	}
	if e.err == nil {
		e.err = cw.w.(*bufio.Writer).Flush()
	}
	if e.err == nil && holes {
		// a hole at the very end is not part of the file until it is
		// extended to its full length
		if tr, ok := out.(interface{ Truncate(int64) error }); ok {
			e.err = tr.Truncate(cw.n)
		}
	}
	if e.err != nil {
		return cw.n, fmt.Errorf("gguf: write: %w", e.err)
	}
	return cw.n, nil
}

// WriteFile writes the file atomically: it is written to a temporary file in
// the same directory, synced and renamed over path, so readers (and
// concurrent writers of the same content) never observe a partial file.
// path must be absent or a regular file: renaming over a device such as
// /dev/null or a folder would replace it with a file.
func (w *Writer) WriteFile(path string) (err error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("gguf: %s is not a regular file; refusing to write over it", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The pid in the name lets the next run of a writer tell a temporary
	// left by a killed process from one being written.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-"+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = w.WriteTo(tmp); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("gguf: %s: sync: %w", path, err)
	}
	// CreateTemp makes the file private; model files are ordinary data.
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: %s: close: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	// Syncing the directory makes the rename durable; not every platform
	// supports it, and the file content is already safe, so failures here
	// are not reported.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// countingWriter counts bytes so WriteTo can report them and pad to the
// alignment relative to the start of the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes little-endian values and remembers the first error so the
// encoding code stays linear.
type encoder struct {
	w   *countingWriter
	err error
	buf [8]byte
}

func (e *encoder) bytes(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

// skip writes size zero bytes: as a hole (a seek past them) when out can
// seek and truncate, which it reports, else as written zeros.
func (e *encoder) skip(out io.Writer, size uint64) bool {
	if e.err != nil {
		return false
	}
	type seekTruncater interface {
		io.Seeker
		Truncate(int64) error
	}
	if s, ok := out.(seekTruncater); ok {
		if e.err = e.w.w.(*bufio.Writer).Flush(); e.err != nil {
			return false
		}
		if _, e.err = s.Seek(int64(size), io.SeekCurrent); e.err != nil {
			return false
		}
		e.w.n += int64(size)
		return true
	}
	for size > 0 && e.err == nil {
		k := min(size, uint64(len(zeros)))
		e.bytes(zeros[:k])
		size -= k
	}
	return false
}

// stream writes a tensor produced by its fill function and checks that it
// wrote exactly the tensor's size.
func (e *encoder) stream(t writerTensor) {
	if e.err != nil {
		return
	}
	start := e.w.n
	if err := t.fill(e.w); err != nil {
		e.err = fmt.Errorf("tensor %q: %w", t.name, err)
		return
	}
	if got := uint64(e.w.n - start); got != t.size {
		e.err = fmt.Errorf("tensor %q: fill wrote %d bytes, want %d", t.name, got, t.size)
	}
}

func (e *encoder) u8(v uint8) { e.buf[0] = v; e.bytes(e.buf[:1]) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.bytes(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}
func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

var zeros [256]byte

// pad writes zero bytes up to the next multiple of align.
func (e *encoder) pad(align uint64) {
	n := alignUp(uint64(e.w.n), align) - uint64(e.w.n)
	for n > 0 && e.err == nil {
		k := min(n, uint64(len(zeros)))
		e.bytes(zeros[:k])
		n -= k
	}
}

// maxNesting bounds array nesting for both reading and writing; real files
// never nest more than once, and the bound keeps recursion shallow on
// corrupt input.
const maxNesting = 64

// value encodes one value of type t; for arrays it writes the element type,
// count and elements.
func (e *encoder) value(t ValueType, v any, depth int) error {
	mismatch := func() error { return fmt.Errorf("value of Go type %T does not match GGUF type %s", v, t) }
	switch t {
	case TypeUint8:
		x, ok := v.(uint8)
		if !ok {
			return mismatch()
		}
		e.u8(x)
	case TypeInt8:
		x, ok := v.(int8)
		if !ok {
			return mismatch()
		}
		e.u8(uint8(x))
	case TypeUint16:
		x, ok := v.(uint16)
		if !ok {
			return mismatch()
		}
		e.u16(x)
	case TypeInt16:
		x, ok := v.(int16)
		if !ok {
			return mismatch()
		}
		e.u16(uint16(x))
	case TypeUint32:
		x, ok := v.(uint32)
		if !ok {
			return mismatch()
		}
		e.u32(x)
	case TypeInt32:
		x, ok := v.(int32)
		if !ok {
			return mismatch()
		}
		e.u32(uint32(x))
	case TypeFloat32:
		x, ok := v.(float32)
		if !ok {
			return mismatch()
		}
		e.u32(math.Float32bits(x))
	case TypeBool:
		x, ok := v.(bool)
		if !ok {
			return mismatch()
		}
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case TypeString:
		x, ok := v.(string)
		if !ok {
			return mismatch()
		}
		e.str(x)
	case TypeUint64:
		x, ok := v.(uint64)
		if !ok {
			return mismatch()
		}
		e.u64(x)
	case TypeInt64:
		x, ok := v.(int64)
		if !ok {
			return mismatch()
		}
		e.u64(uint64(x))
	case TypeFloat64:
		x, ok := v.(float64)
		if !ok {
			return mismatch()
		}
		e.u64(math.Float64bits(x))
	case TypeArray:
		a, ok := v.(Array)
		if !ok {
			return mismatch()
		}
		return e.array(a, depth+1)
	default:
		return fmt.Errorf("unknown value type %d", uint32(t))
	}
	return nil
}

func (e *encoder) array(a Array, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("arrays nested deeper than %d", maxNesting)
	}
	n := a.Len()
	if n < 0 || !matchesElem(a) {
		return fmt.Errorf("array of %s holds Go type %T", a.Elem, a.Values)
	}
	e.u32(uint32(a.Elem))
	e.u64(uint64(n))
	switch vs := a.Values.(type) {
	case []uint8:
		e.bytes(vs)
	case []int8:
		for _, x := range vs {
			e.u8(uint8(x))
		}
	case []uint16:
		for _, x := range vs {
			e.u16(x)
		}
	case []int16:
		for _, x := range vs {
			e.u16(uint16(x))
		}
	case []uint32:
		for _, x := range vs {
			e.u32(x)
		}
	case []int32:
		for _, x := range vs {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range vs {
			e.u32(math.Float32bits(x))
		}
	case []bool:
		for _, x := range vs {
			if x {
				e.u8(1)
			} else {
				e.u8(0)
			}
		}
	case []string:
		for _, x := range vs {
			e.str(x)
		}
	case []uint64:
		for _, x := range vs {
			e.u64(x)
		}
	case []int64:
		for _, x := range vs {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range vs {
			e.u64(math.Float64bits(x))
		}
	case []Array:
		for i, x := range vs {
			if err := e.array(x, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	return nil
}

// matchesElem reports whether the Go slice type of a.Values is the one
// documented for a.Elem.
func matchesElem(a Array) bool {
	var ok bool
	switch a.Elem {
	case TypeUint8:
		_, ok = a.Values.([]uint8)
	case TypeInt8:
		_, ok = a.Values.([]int8)
	case TypeUint16:
		_, ok = a.Values.([]uint16)
	case TypeInt16:
		_, ok = a.Values.([]int16)
	case TypeUint32:
		_, ok = a.Values.([]uint32)
	case TypeInt32:
		_, ok = a.Values.([]int32)
	case TypeFloat32:
		_, ok = a.Values.([]float32)
	case TypeBool:
		_, ok = a.Values.([]bool)
	case TypeString:
		_, ok = a.Values.([]string)
	case TypeUint64:
		_, ok = a.Values.([]uint64)
	case TypeInt64:
		_, ok = a.Values.([]int64)
	case TypeFloat64:
		_, ok = a.Values.([]float64)
	case TypeArray:
		_, ok = a.Values.([]Array)
	}
	return ok
}
