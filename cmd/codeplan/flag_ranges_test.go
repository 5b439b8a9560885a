package main

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// requiredArgs are the flags a command needs before its flags are checked.
var requiredArgs = map[string][]string{
	"merge":        {"--output", "x.jsonl"},
	"model random": {"--shape", "1b", "--out", "x.gguf"},
	"report":       {"--out", "rep"},
	"synth":        {"--out", "x.jsonl"},
}

// outside returns values just outside r for a flag of f's type: below the
// minimum and above the maximum (none where the type cannot hold one).
func outside(f cli.Flag, r flagRange) []string {
	var vals []float64
	_, isFloat := f.(*cli.Float64Flag)
	_, isDur := f.(*cli.DurationFlag)
	step := 1.0
	if isFloat {
		step = 0.5
	}
	switch {
	case math.IsInf(r.min, -1):
	case r.minOpen:
		vals = append(vals, r.min)
	default:
		vals = append(vals, r.min-step)
	}
	switch {
	case math.IsInf(r.max, 1):
	case r.maxOpen:
		vals = append(vals, r.max)
	default:
		vals = append(vals, r.max+step)
	}
	var out []string
	for _, v := range vals {
		switch f.(type) {
		case *cli.UintFlag, *cli.Uint64Flag:
			if v < 0 {
				continue // the parser refuses it already
			}
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if isDur {
			s += "s"
		}
		out = append(out, s)
	}
	if isFloat {
		out = append(out, "NaN", "Inf")
	}
	return out
}

// walkCommands calls fn for every command, with its full name.
func walkCommands(cmds []*cli.Command, prefix string, fn func(name string, c *cli.Command)) {
	for _, c := range cmds {
		name := strings.TrimSpace(prefix + " " + c.Name)
		fn(name, c)
		walkCommands(c.Subcommands, name, fn)
	}
}

// TestNumericFlagRanges: every numeric flag of every command has a range
// in flagRanges, and a value just outside it (and NaN or Inf for a float)
// is refused with exit 2 and a message naming the flag, before anything
// loads. Before, generate --max-tokens -1 ran (with 512) and recorded -1 in
// its rows, extract --limit -1 was taken as no limit, and model init --out
// on a device exited 1.
func TestNumericFlagRanges(t *testing.T) {
	tested := 0
	walkCommands(newApp().Commands, "", func(name string, cmd *cli.Command) {
		for _, f := range cmd.Flags {
			flag := f.Names()[0]
			if !isNumericFlag(f) {
				continue
			}
			r, ok := rangeOf(name, flag)
			if !ok {
				t.Errorf("%s --%s has no range in flagRanges", name, flag)
				continue
			}
			if r.any {
				continue
			}
			for _, v := range outside(f, r) {
				args := append([]string{"-q"}, strings.Fields(name)...)
				args = append(args, requiredArgs[name]...)
				args = append(args, "--"+flag+"="+v)
				code, _, stderr := runCLI(t, args...)
				tested++
				if code != 2 || !strings.Contains(stderr, "--"+flag) || crashTrace(stderr) {
					t.Errorf("%s --%s=%s: exit %d; stderr:\n%s", name, flag, v, code, stderr)
				}
			}
		}
	})
	if tested < 40 {
		t.Errorf("only %d out-of-range values tried", tested)
	}
}

// TestRangeDescriptions: the messages say the range the way the README's
// flag help does.
func TestRangeDescriptions(t *testing.T) {
	for _, tc := range []struct {
		r    flagRange
		want string
	}{
		{flagRanges["max-tokens"], ">= 1"},
		{flagRanges["ngl"], ">= -1 (-1 = every layer)"},
		{flagRanges["poll"], "in -1..100 (-1 = ggml's default)"},
		{flagRanges["lr"], "in (0, 1]"},
		{flagRanges["val-split"], "in [0, 1)"},
		{flagRanges["lora-alpha"], "> 0"},
	} {
		if got := tc.r.describe(); got != tc.want {
			t.Errorf("describe = %q, want %q", got, tc.want)
		}
	}
}
