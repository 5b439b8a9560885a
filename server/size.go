package server

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits maps size suffixes to multipliers. Both the binary (KiB) and the
// decimal (KB) spellings are accepted because people write either; the
// short forms (k, m, g) are binary, as in most command-line tools.
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kib": 1 << 10,
	"kb":  1000,
	"m":   1 << 20,
	"mib": 1 << 20,
	"mb":  1000 * 1000,
	"g":   1 << 30,
	"gib": 1 << 30,
	"gb":  1000 * 1000 * 1000,
}

// ParseByteSize parses a size such as "1MiB", "512k", "2.5MB" or "65536"
// (bytes) for flags like --max-body. The result must be positive.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB, k, m, g), e.g. 1MiB", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: bad number %q", s, num)
	}
	n := v * float64(mult)
	if n < 1 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: must be at least 1 byte and below 4 EiB", s)
	}
	return int64(n), nil
}
