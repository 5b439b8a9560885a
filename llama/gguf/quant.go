package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// BlockSize is the number of values in one Q8_0 or Q4_0 block.
const BlockSize = 32

// QuantizeQ8_0 encodes x (a multiple of 32 values) in ggml's Q8_0 layout:
// per block of 32, an F16 scale max|x|/127 and 32 rounded int8 values. It
// follows ggml's reference rounding, so llama.cpp reads what it would write.
func QuantizeQ8_0(x []float32) ([]byte, error) {
	if len(x)%BlockSize != 0 {
		return nil, fmt.Errorf("gguf: Q8_0 needs a multiple of %d values, got %d", BlockSize, len(x))
	}
	out := make([]byte, 0, len(x)/BlockSize*34)
	for b := 0; b < len(x); b += BlockSize {
		amax := float32(0)
		for _, v := range x[b : b+BlockSize] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		out = binary.LittleEndian.AppendUint16(out, Float32ToF16(d))
		for _, v := range x[b : b+BlockSize] {
			q := 0.0
			if d != 0 {
				q = math.Round(float64(v / d))
			}
			out = append(out, byte(int8(q)))
		}
	}
	return out, nil
}

// QuantizeQ4_0 encodes x (a multiple of 32 values) in ggml's Q4_0 layout:
// per block, an F16 scale (the value of largest magnitude / -8) and 32
// 4-bit values, the first 16 in the low nibbles and the rest in the high.
func QuantizeQ4_0(x []float32) ([]byte, error) {
	if len(x)%BlockSize != 0 {
		return nil, fmt.Errorf("gguf: Q4_0 needs a multiple of %d values, got %d", BlockSize, len(x))
	}
	out := make([]byte, 0, len(x)/BlockSize*18)
	for b := 0; b < len(x); b += BlockSize {
		blk := x[b : b+BlockSize]
		amax, mx := float32(0), float32(0)
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := mx / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, Float32ToF16(d))
		for j := 0; j < BlockSize/2; j++ {
			q0 := min(15, int(blk[j]*id+8.5))
			q1 := min(15, int(blk[j+BlockSize/2]*id+8.5))
			out = append(out, byte(q0)|byte(q1)<<4)
		}
	}
	return out, nil
}

// dequantize decodes Q8_0 and Q4_0 data back to float32 values.
func dequantize(typ TensorType, data []byte, n int) ([]float32, error) {
	var blockBytes int
	switch typ {
	case TensorQ8_0:
		blockBytes = 34
	case TensorQ4_0:
		blockBytes = 18
	default:
		return nil, fmt.Errorf("gguf: cannot decode %s", typ)
	}
	if n%BlockSize != 0 || len(data) != n/BlockSize*blockBytes {
		return nil, fmt.Errorf("gguf: %s data of %d bytes does not hold %d values", typ, len(data), n)
	}
	out := make([]float32, 0, n)
	for b := 0; b < len(data); b += blockBytes {
		d := F16ToFloat32(binary.LittleEndian.Uint16(data[b:]))
		q := data[b+2 : b+blockBytes]
		if typ == TensorQ8_0 {
			for _, v := range q {
				out = append(out, float32(int8(v))*d)
			}
			continue
		}
		var hi [BlockSize / 2]float32
		for j, v := range q {
			out = append(out, float32(int(v&0x0f)-8)*d)
			hi[j] = float32(int(v>>4)-8) * d
		}
		out = append(out, hi[:]...)
	}
	return out, nil
}
