package synth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseSteps parses a step list such as "1,2,4" or "1-5" (ranges and
// single values may be mixed: "1-3,6,8").
func ParseSteps(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("step list %q has an empty entry", s)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err != nil || a < 1 || b < a {
			return nil, fmt.Errorf("step list %q: bad entry %q (want positive integers like 1,2,4 or 1-5)", s, part)
		}
		for k := a; k <= b; k++ {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out, nil
}
