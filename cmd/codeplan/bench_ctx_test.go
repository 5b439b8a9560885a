package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchExtractCtx: --extract-ctx measures on the context extract would
// allocate at the same --parallel (one more sequence, each of min(4096,
// the model's context) tokens), not on P × (pp + tg); a --ctx whose share
// cannot hold pp + tg is refused with exit 2.
func TestBenchExtractCtx(t *testing.T) {
	base := []string{"-q", "bench", "tiny", "--parallels", "2", "--pp", "16", "--tg", "4", "--threads", "1", "--json"}
	ctxOf := func(args ...string) int {
		t.Helper()
		code, out, stderr := runCLI(t, append(base, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var row struct {
			Ctx  int     `json:"ctx"`
			TGTS float64 `json:"tg_tok_s"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &row); err != nil || row.TGTS <= 0 {
			t.Fatalf("%v: %q (%v)", args, out, err)
		}
		return row.Ctx
	}
	if got := ctxOf("--extract-ctx"); got != 3*4096 {
		t.Errorf("--extract-ctx: context %d, want 3 × 4096 (tiny's context length)", got)
	}
	if got := ctxOf(); got >= 3*4096 || got < 2*20 {
		t.Errorf("default: context %d, want about 2 × (16 + 4)", got)
	}
	code, _, stderr := runCLI(t, append(base, "--pp", "600", "--ctx", "512")...)
	if code != 2 || !strings.Contains(stderr, "exceed the") || strings.Contains(stderr, "panic:") {
		t.Errorf("--pp 600 in a 512 context: exit %d: %s", code, stderr)
	}
}
