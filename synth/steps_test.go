package synth

import (
	"slices"
	"testing"
)

func TestParseSteps(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "1,2,4", want: []int{1, 2, 4}},
		{in: "1-3, 6", want: []int{1, 2, 3, 6}},
		{in: "2,2,1", want: []int{2, 1}},
		{in: "5", want: []int{5}},
		{in: "", bad: true},
		{in: "1,,2", bad: true},
		{in: "0", bad: true},
		{in: "3-1", bad: true},
		{in: "x", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseSteps(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseSteps(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSteps(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
