// Package gguf reads and writes GGUF files (version 3, little-endian), the
// container format llama.cpp loads models and LoRA adapters from.
//
// The package is pure Go so that tests and tools can build small models,
// adapters and inspect real model files without compiling llama.cpp.
package gguf

import "fmt"

// Version is the GGUF format version this package writes and the newest it
// reads. Version 2 files share the same layout and are read as well.
const Version = 3

// DefaultAlignment is the alignment of tensor data when the file does not set
// the general.alignment key.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that overrides DefaultAlignment; its value
// must be a u32 power of two.
const AlignmentKey = "general.alignment"

// maxDims mirrors GGML_MAX_DIMS: llama.cpp rejects tensors with more
// dimensions, so neither the reader nor the writer accepts them.
const maxDims = 4

// maxTensorName mirrors GGML_MAX_NAME: ggml keeps names in a 64-byte buffer
// including the terminating NUL, so longer names would be rejected on load.
const maxTensorName = 63

// magic is "GGUF" read as a little-endian uint32.
const magic = 0x46554747

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	TypeUint8: "u8", TypeInt8: "i8", TypeUint16: "u16", TypeInt16: "i16",
	TypeUint32: "u32", TypeInt32: "i32", TypeFloat32: "f32", TypeBool: "bool",
	TypeString: "string", TypeArray: "array", TypeUint64: "u64", TypeInt64: "i64",
	TypeFloat64: "f64",
}

// String returns the short name llama.cpp uses for the type (u32, f32, ...).
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// fixedSize is the encoded size of a scalar of type t, or 0 for strings,
// arrays and unknown types.
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// minEncodedSize is the fewest bytes one value of type t can take in a file.
// The reader multiplies it by claimed element counts to reject counts that
// cannot fit in the remaining bytes before allocating anything.
func (t ValueType) minEncodedSize() int {
	switch t {
	case TypeString:
		return 8 // length prefix
	case TypeArray:
		return 12 // element type + count
	}
	return t.fixedSize()
}

// KV is one metadata entry. Value holds uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64 or float64 matching Type, or an
// Array when Type is TypeArray.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// Array is a metadata array value. Values is a slice of the Go type matching
// Elem ([]uint8, []int8, []uint16, []int16, []uint32, []int32, []float32,
// []bool, []string, []uint64, []int64, []float64), or []Array when Elem is
// TypeArray (arrays may nest).
type Array struct {
	Elem   ValueType
	Values any
}

// Len returns the number of elements, or -1 when Values does not match Elem.
func (a Array) Len() int {
	switch v := a.Values.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return -1
}

// TensorType is a ggml tensor element type (ggml_type).
type TensorType uint32

// Tensor types, numbered as ggml_type. Only F32 and F16 (and BF16 for
// reading) are decoded by this package; the others are listed so that real
// model files parse and report correct tensor sizes.
const (
	TensorF32     TensorType = 0
	TensorF16     TensorType = 1
	TensorQ4_0    TensorType = 2
	TensorQ4_1    TensorType = 3
	TensorQ5_0    TensorType = 6
	TensorQ5_1    TensorType = 7
	TensorQ8_0    TensorType = 8
	TensorQ8_1    TensorType = 9
	TensorQ2_K    TensorType = 10
	TensorQ3_K    TensorType = 11
	TensorQ4_K    TensorType = 12
	TensorQ5_K    TensorType = 13
	TensorQ6_K    TensorType = 14
	TensorQ8_K    TensorType = 15
	TensorIQ2_XXS TensorType = 16
	TensorIQ2_XS  TensorType = 17
	TensorIQ3_XXS TensorType = 18
	TensorIQ1_S   TensorType = 19
	TensorIQ4_NL  TensorType = 20
	TensorIQ3_S   TensorType = 21
	TensorIQ2_S   TensorType = 22
	TensorIQ4_XS  TensorType = 23
	TensorI8      TensorType = 24
	TensorI16     TensorType = 25
	TensorI32     TensorType = 26
	TensorI64     TensorType = 27
	TensorF64     TensorType = 28
	TensorIQ1_M   TensorType = 29
	TensorBF16    TensorType = 30
	TensorTQ1_0   TensorType = 34
	TensorTQ2_0   TensorType = 35
	TensorMXFP4   TensorType = 39
)

// tensorLayout is how many elements one block holds and how many bytes it
// takes; plain types have blocks of one element.
type tensorLayout struct {
	name       string
	blockElems uint64
	blockBytes uint64
}

// The block sizes follow the static_asserts in ggml-common.h.
var tensorLayouts = map[TensorType]tensorLayout{
	TensorF32:     {"F32", 1, 4},
	TensorF16:     {"F16", 1, 2},
	TensorQ4_0:    {"Q4_0", 32, 18},
	TensorQ4_1:    {"Q4_1", 32, 20},
	TensorQ5_0:    {"Q5_0", 32, 22},
	TensorQ5_1:    {"Q5_1", 32, 24},
	TensorQ8_0:    {"Q8_0", 32, 34},
	TensorQ8_1:    {"Q8_1", 32, 36},
	TensorQ2_K:    {"Q2_K", 256, 84},
	TensorQ3_K:    {"Q3_K", 256, 110},
	TensorQ4_K:    {"Q4_K", 256, 144},
	TensorQ5_K:    {"Q5_K", 256, 176},
	TensorQ6_K:    {"Q6_K", 256, 210},
	TensorQ8_K:    {"Q8_K", 256, 292},
	TensorIQ2_XXS: {"IQ2_XXS", 256, 66},
	TensorIQ2_XS:  {"IQ2_XS", 256, 74},
	TensorIQ3_XXS: {"IQ3_XXS", 256, 98},
	TensorIQ1_S:   {"IQ1_S", 256, 50},
	TensorIQ4_NL:  {"IQ4_NL", 32, 18},
	TensorIQ3_S:   {"IQ3_S", 256, 110},
	TensorIQ2_S:   {"IQ2_S", 256, 82},
	TensorIQ4_XS:  {"IQ4_XS", 256, 136},
	TensorI8:      {"I8", 1, 1},
	TensorI16:     {"I16", 1, 2},
	TensorI32:     {"I32", 1, 4},
	TensorI64:     {"I64", 1, 8},
	TensorF64:     {"F64", 1, 8},
	TensorIQ1_M:   {"IQ1_M", 256, 56},
	TensorBF16:    {"BF16", 1, 2},
	TensorTQ1_0:   {"TQ1_0", 256, 54},
	TensorTQ2_0:   {"TQ2_0", 256, 66},
	TensorMXFP4:   {"MXFP4", 32, 17},
}

// String returns ggml's name for the type (F32, Q4_K, ...).
func (t TensorType) String() string {
	if l, ok := tensorLayouts[t]; ok {
		return l.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// Known reports whether the package knows the block layout of t, which is
// needed to compute tensor sizes.
func (t TensorType) Known() bool {
	_, ok := tensorLayouts[t]
	return ok
}

// tensorSize returns the byte size of a tensor of type t and shape ne, or an
// error when the type is unknown, the first dimension is not a whole number
// of blocks, or the size overflows.
func tensorSize(t TensorType, ne []uint64) (uint64, error) {
	l, ok := tensorLayouts[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if len(ne) == 0 || len(ne) > maxDims {
		return 0, fmt.Errorf("%d dimensions, want 1 to %d", len(ne), maxDims)
	}
	if ne[0]%l.blockElems != 0 {
		return 0, fmt.Errorf("first dimension %d is not a multiple of the %s block size %d", ne[0], l.name, l.blockElems)
	}
	// ggml stores element counts as int64, so cap the product there.
	const limit = uint64(1) << 63
	n := uint64(1)
	for _, d := range ne {
		if d >= limit {
			return 0, fmt.Errorf("dimension %d is too large", d)
		}
		if d != 0 && n > (limit-1)/d {
			return 0, fmt.Errorf("shape %v has too many elements", ne)
		}
		n *= d
	}
	blocks := n / l.blockElems
	if blocks != 0 && l.blockBytes > (limit-1)/blocks {
		return 0, fmt.Errorf("shape %v is too large in bytes", ne)
	}
	return blocks * l.blockBytes, nil
}

// alignUp rounds n up to a multiple of align, which must be a power of two.
func alignUp(n, align uint64) uint64 {
	return (n + align - 1) &^ (align - 1)
}

// validAlignment reports whether a is usable as data alignment.
func validAlignment(a uint64) bool {
	return a != 0 && a&(a-1) == 0
}
