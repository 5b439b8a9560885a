package safetensors

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Writer builds a safetensors file. Tensors are laid out in the order they
// are added; tensors added with AddFunc are streamed when the file is
// written, so only headers stay in memory.
type Writer struct {
	meta    map[string]string
	tensors []writerTensor
	names   map[string]bool
}

type writerTensor struct {
	info TensorInfo
	data []byte
	fill func(io.Writer) error
}

// NewWriter starts an empty file.
func NewWriter() *Writer { return &Writer{names: map[string]bool{}} }

// SetMetadata sets one __metadata__ entry.
func (w *Writer) SetMetadata(key, value string) {
	if w.meta == nil {
		w.meta = map[string]string{}
	}
	w.meta[key] = value
}

// Add appends a tensor whose bytes are data (little-endian, row-major).
func (w *Writer) Add(name string, d DType, shape []uint64, data []byte) error {
	size, err := w.check(name, d, shape)
	if err != nil {
		return err
	}
	if uint64(len(data)) != size {
		return fmt.Errorf("safetensors: tensor %q: %s %v needs %d bytes, got %d", name, d, shape, size, len(data))
	}
	w.append(name, d, shape, size, data, nil)
	return nil
}

// AddFunc appends a tensor whose bytes fill writes when the file is written;
// it must write exactly the bytes dtype and shape imply.
func (w *Writer) AddFunc(name string, d DType, shape []uint64, fill func(io.Writer) error) error {
	if fill == nil {
		return fmt.Errorf("safetensors: tensor %q: no fill function", name)
	}
	size, err := w.check(name, d, shape)
	if err != nil {
		return err
	}
	w.append(name, d, shape, size, nil, fill)
	return nil
}

func (w *Writer) append(name string, d DType, shape []uint64, size uint64, data []byte, fill func(io.Writer) error) {
	var begin uint64
	if n := len(w.tensors); n > 0 {
		begin = w.tensors[n-1].info.End
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{
		info: TensorInfo{Name: name, DType: d, Shape: append([]uint64{}, shape...), Begin: begin, End: begin + size},
		data: data, fill: fill,
	})
}

func (w *Writer) check(name string, d DType, shape []uint64) (uint64, error) {
	if name == "" || name == MetadataKey {
		return 0, fmt.Errorf("safetensors: tensor name %q is not allowed", name)
	}
	if w.names[name] {
		return 0, fmt.Errorf("safetensors: tensor %q added twice", name)
	}
	if d.Size() == 0 {
		return 0, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", name, d)
	}
	size, ok := byteSize(d, shape)
	if !ok {
		return 0, fmt.Errorf("safetensors: tensor %q: shape %v is too large", name, shape)
	}
	return size, nil
}

// header renders the JSON header: __metadata__ first (keys sorted), then the
// tensors in data order, padded with spaces to a multiple of 8 bytes so the
// data starts aligned.
func (w *Writer) header() []byte {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	quote := func(s string) {
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	if len(w.meta) > 0 {
		sep()
		quote(MetadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(w.meta))
		for k := range w.meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			quote(k)
			b.WriteByte(':')
			quote(w.meta[k])
		}
		b.WriteByte('}')
	}
	for _, t := range w.tensors {
		sep()
		quote(t.info.Name)
		b.WriteString(`:{"dtype":`)
		quote(string(t.info.DType))
		b.WriteString(`,"shape":[`)
		for i, d := range t.info.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(d, 10))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatUint(t.info.Begin, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatUint(t.info.End, 10))
		b.WriteString("]}")
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return []byte(b.String())
}

// WriteTo encodes the file to out. It implements io.WriterTo.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriterSize(out, 1<<16)}
	hdr := w.header()
	var lenBuf [8]byte
	n := uint64(len(hdr))
	for i := range lenBuf {
		lenBuf[i] = byte(n >> (8 * i))
	}
	cw.Write(lenBuf[:])
	cw.Write(hdr)
	for _, t := range w.tensors {
		if cw.err != nil {
			break
		}
		start := cw.n
		if t.fill != nil {
			if err := t.fill(cw); err != nil {
				return cw.n, fmt.Errorf("safetensors: tensor %q: %w", t.info.Name, err)
			}
		} else {
			cw.Write(t.data)
		}
		if got := uint64(cw.n - start); cw.err == nil && got != t.info.End-t.info.Begin {
			return cw.n, fmt.Errorf("safetensors: tensor %q: wrote %d bytes, want %d", t.info.Name, got, t.info.End-t.info.Begin)
		}
	}
	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("safetensors: write: %w", cw.err)
	}
	return cw.n, nil
}

// WriteFile writes the file atomically (a temporary file in the same folder,
// synced, then renamed over path). path must be absent or a regular file.
func (w *Writer) WriteFile(path string) (err error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file; refusing to write over it", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
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
		return fmt.Errorf("%s: sync: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// countWriter counts bytes and keeps the first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
