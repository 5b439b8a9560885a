package gguf

import "math"

// Float32ToF16 converts f to IEEE 754 half precision bits, rounding to the
// nearest representable value (ties to even) as ggml's reference conversion
// does. Values beyond the half range become infinities and NaNs stay NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff

	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 // quiet NaN; the payload is not preserved
		}
		return sign | 0x7c00
	}

	e := exp - 127 + 15 // re-biased exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// The result is a half subnormal (or zero): its mantissa counts units
		// of 2^-24, so shift the full 24-bit float significand accordingly.
		if e < -10 {
			return sign // below half of the smallest subnormal
		}
		sig := mant | 0x800000
		shift := uint32(14 - e)
		m := sig >> shift
		rem := sig & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // may carry into the smallest normal, which encodes correctly
		}
		return sign | uint16(m)
	}

	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to infinity
	}
	return sign | uint16(h)
}

// F16ToFloat32 converts IEEE 754 half precision bits to float32 exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)

	switch exp {
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalise the mantissa so float32 can use an implicit 1.
		e := uint32(127 - 14)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BF16ToFloat32 converts bfloat16 bits to float32 exactly; bfloat16 is the
// upper half of a float32.
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBF16 rounds a float32 to the nearest bfloat16, ties to even; a
// NaN stays a (quiet) NaN. It is the inverse of BF16ToFloat32 for every
// value bfloat16 can hold.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
