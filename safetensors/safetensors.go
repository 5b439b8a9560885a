// Package safetensors reads and writes the safetensors format of Hugging
// Face: an 8-byte little-endian header length, a JSON header naming every
// tensor's dtype, shape and byte range, then the raw tensor bytes.
//
// The reader trusts nothing: the header length is bounded, the JSON must be
// an object with no duplicate names and no unknown fields, every dtype must
// be known, every byte range must hold exactly its shape's bytes, and the
// ranges must tile the data section from its start to the end of the file
// with no gap and no overlap (what the reference implementation requires).
// Every failure wraps ErrCorrupt or ErrTruncated and names the file.
package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

var (
	// ErrCorrupt means the file is structurally invalid.
	ErrCorrupt = errors.New("corrupt safetensors file")
	// ErrTruncated means the file ends before the data its header declares.
	ErrTruncated = errors.New("truncated safetensors file")
)

// MaxHeader bounds the JSON header (the reference implementation's limit);
// a larger declared length is corrupt, not a reason to allocate.
const MaxHeader = 100 << 20

// MetadataKey is the header entry of free-form string metadata.
const MetadataKey = "__metadata__"

// DType is a tensor element type as the header spells it ("F32").
type DType string

// The element types. F32, F16 and BF16 are what models and adapters use;
// the others are known so that such files are read rather than refused.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	Bool DType = "BOOL"
	F8E4 DType = "F8_E4M3"
	F8E5 DType = "F8_E5M2"
)

// Size returns the bytes per element, 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool, F8E4, F8E5:
		return 1
	}
	return 0
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	// Shape is in PyTorch order: Shape[0] is the slowest-varying dimension.
	Shape []uint64
	// Begin and End are byte offsets into the data section.
	Begin, End uint64
}

// Elements returns the product of the shape (1 for a scalar).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file; tensor data is read on demand.
type File struct {
	// Path names the file in errors.
	Path string
	// Metadata is the __metadata__ map (nil when absent).
	Metadata map[string]string
	// Tensors are in data order (by Begin).
	Tensors []TensorInfo

	index     map[string]int
	dataStart int64
	r         io.ReaderAt
	closer    io.Closer
}

// Open parses the file at path; Close it when done.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	sf, err := parse(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

// Read parses a file held by r, size bytes long.
func Read(r io.ReaderAt, size int64) (*File, error) { return parse("", r, size) }

// Close closes the underlying file (a no-op for Read).
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
		return "safetensors"
	}
	return f.Path
}

// Tensor looks a tensor up by name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Data reads a tensor's bytes.
func (f *File) Data(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.name(), name)
	}
	if f.r == nil {
		return nil, fmt.Errorf("%s: file is closed", f.name())
	}
	buf := make([]byte, t.End-t.Begin)
	n, err := f.r.ReadAt(buf, f.dataStart+int64(t.Begin))
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = ErrTruncated
	}
	return nil, fmt.Errorf("%s: tensor %q: %w", f.name(), name, err)
}

// headerEntry is one tensor of the JSON header.
type headerEntry struct {
	DType       *string   `json:"dtype"`
	Shape       *[]uint64 `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

func parse(path string, r io.ReaderAt, size int64) (*File, error) {
	name := path
	if name == "" {
		name = "safetensors"
	}
	bad := func(kind error, format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, kind, fmt.Sprintf(format, args...))
	}
	if size < 8 {
		return nil, bad(ErrTruncated, "%d bytes, shorter than the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, bad(ErrTruncated, "reading the header length: %v", err)
	}
	var n uint64
	for i := 7; i >= 0; i-- {
		n = n<<8 | uint64(lenBuf[i])
	}
	if n > MaxHeader {
		return nil, bad(ErrCorrupt, "header length %d is over the %d-byte limit", n, MaxHeader)
	}
	if n < 2 {
		return nil, bad(ErrCorrupt, "header length %d cannot hold a JSON object", n)
	}
	if n > uint64(size-8) {
		return nil, bad(ErrTruncated, "header length %d, but only %d bytes follow it", n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, bad(ErrTruncated, "reading the header: %v", err)
	}
	f := &File{Path: path, index: map[string]int{}, dataStart: int64(8 + n), r: r}
	dataLen := uint64(size) - 8 - n

	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, bad(ErrCorrupt, "header is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad(ErrCorrupt, "header JSON: %v", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, bad(ErrCorrupt, "%q appears twice in the header", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, bad(ErrCorrupt, "header JSON at %q: %v", key, err)
		}
		if key == MetadataKey {
			if err := json.Unmarshal(raw, &f.Metadata); err != nil {
				return nil, bad(ErrCorrupt, "%s must map strings to strings: %v", MetadataKey, err)
			}
			continue
		}
		t, err := decodeEntry(key, raw)
		if err != nil {
			return nil, bad(ErrCorrupt, "%v", err)
		}
		f.Tensors = append(f.Tensors, t)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, bad(ErrCorrupt, "header JSON object is not closed")
	}
	// Only padding may follow the object.
	if rest := hdr[dec.InputOffset():]; strings.Trim(string(rest), " \t\r\n\x00") != "" {
		return nil, bad(ErrCorrupt, "bytes after the header's JSON object")
	}

	sort.SliceStable(f.Tensors, func(i, j int) bool { return f.Tensors[i].Begin < f.Tensors[j].Begin })
	var pos uint64
	for i, t := range f.Tensors {
		switch {
		case t.Begin < pos:
			return nil, bad(ErrCorrupt, "tensor %q starts at byte %d, inside %q (which ends at %d)", t.Name, t.Begin, f.Tensors[i-1].Name, pos)
		case t.Begin > pos:
			return nil, bad(ErrCorrupt, "gap of %d bytes before tensor %q (at %d)", t.Begin-pos, t.Name, t.Begin)
		}
		pos = t.End
		f.index[t.Name] = i
	}
	if pos > dataLen {
		return nil, bad(ErrTruncated, "tensor data ends at byte %d, but the file holds %d bytes of data", pos, dataLen)
	}
	if pos < dataLen {
		return nil, bad(ErrCorrupt, "%d bytes after the last tensor", dataLen-pos)
	}
	return f, nil
}

// decodeEntry checks one tensor's header entry.
func decodeEntry(name string, raw json.RawMessage) (TensorInfo, error) {
	if name == "" {
		return TensorInfo{}, errors.New("a tensor has an empty name")
	}
	var e headerEntry
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: needs dtype, shape and data_offsets", name)
	}
	t := TensorInfo{Name: name, DType: DType(*e.DType), Shape: *e.Shape}
	if t.DType.Size() == 0 {
		return t, fmt.Errorf("tensor %q: unknown dtype %q", name, *e.DType)
	}
	if len(*e.DataOffsets) != 2 {
		return t, fmt.Errorf("tensor %q: data_offsets must be [begin, end]", name)
	}
	t.Begin, t.End = (*e.DataOffsets)[0], (*e.DataOffsets)[1]
	if t.End < t.Begin {
		return t, fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin", name, t.Begin, t.End)
	}
	want, ok := byteSize(t.DType, t.Shape)
	if !ok {
		return t, fmt.Errorf("tensor %q: shape %v is too large", name, t.Shape)
	}
	if t.End-t.Begin != want {
		return t, fmt.Errorf("tensor %q: %s %v needs %d bytes, data_offsets give %d", name, t.DType, t.Shape, want, t.End-t.Begin)
	}
	return t, nil
}

// byteSize is the data size of a tensor, false on overflow.
func byteSize(d DType, shape []uint64) (uint64, bool) {
	n := uint64(d.Size())
	for _, s := range shape {
		if s != 0 && n > math.MaxUint64/s {
			return 0, false
		}
		n *= s
	}
	return n, n <= math.MaxInt64
}
