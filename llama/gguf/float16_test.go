package gguf

import (
	"math"
	"testing"
)

// TestFloat32ToBF16 checks rounding to nearest even, special values, and
// that BF16ToFloat32 inverts it on every representable value.
func TestFloat32ToBF16(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{0, 0},
		{float32(math.Inf(1)), 0x7f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // exactly halfway, even below: stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // exactly halfway, odd below: rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // just above halfway
	}
	for _, c := range cases {
		if got := Float32ToBF16(c.in); got != c.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(c.in), got, c.want)
		}
	}
	if h := Float32ToBF16(float32(math.NaN())); BF16ToFloat32(h) == BF16ToFloat32(h) {
		t.Errorf("NaN became %#04x, not a NaN", h)
	}
	for h := uint32(0); h < 1<<16; h++ {
		f := BF16ToFloat32(uint16(h))
		if f != f {
			continue
		}
		if back := Float32ToBF16(f); back != uint16(h) {
			t.Fatalf("round trip of %#04x gave %#04x", h, back)
		}
	}
}
