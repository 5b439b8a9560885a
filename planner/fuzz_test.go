package planner

import (
	"strings"
	"testing"
)

// FuzzFindCode checks FindCode's guarantees on arbitrary input. Plain
// `go test` runs only the seeds; run `go test -fuzz=FuzzFindCode ./planner`
// to search further.
func FuzzFindCode(f *testing.F) {
	for _, s := range []string{
		"", "```", "```python", "```python\n", "~~~\n~~~", "````\n```\n````",
		goodPlan,
		"```python x = 1```",
		"Here:\n\ndef f():\n\tif x:\n\t\treturn y\n\nBye.",
		"```json\n{}\n```\n```py\nx = 1\n```",
		"x = 1\r\ny = 2\r\n",
		"\t\t\n   \n```\n\n\n```",
		"```python\n\"\"\"unterminated\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		code, ok := FindCode(in)
		if !ok {
			if code != "" {
				t.Fatalf("ok=false with code %q", code)
			}
			return
		}
		if strings.TrimSpace(code) == "" {
			t.Fatalf("ok=true with blank code %q", code)
		}
		if strings.ContainsAny(code, "\t\r") {
			t.Fatalf("tab or CR left in %q", code)
		}
		lines := strings.Split(code, "\n")
		if lines[0] == "" || lines[len(lines)-1] == "" {
			t.Fatalf("blank line at an end of %q", code)
		}
		dedented := false
		for i, l := range lines {
			if strings.TrimRightFunc(l, isSpaceRune) != l {
				t.Fatalf("trailing space on line %d of %q", i+1, code)
			}
			if i > 0 && l == "" && lines[i-1] == "" {
				t.Fatalf("blank-line run in %q", code)
			}
			if l != "" && l[0] != ' ' {
				dedented = true
			}
		}
		if !dedented {
			t.Fatalf("common indentation left in %q", code)
		}
		// A normalised plan fenced again comes back unchanged, unless it holds
		// fence lines of its own.
		hasFence := false
		for _, l := range lines {
			if isFenceLine(l) {
				hasFence = true
			}
		}
		if !hasFence {
			again, ok := FindCode("```python\n" + code + "\n```")
			if !ok || again != code {
				t.Fatalf("re-fenced %q gave %q, %v", code, again, ok)
			}
		}
		// The filter never panics on what FindCode accepts.
		(&Filter{}).Check(Candidate{Output: in, Response: in, Prompt: in})
	})
}

// isSpaceRune adapts unicode.IsSpace's rule used by normalizeCode.
func isSpaceRune(r rune) bool { return strings.TrimSpace(string(r)) == "" }
