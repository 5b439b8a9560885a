package chat

import (
	"reflect"
	"testing"
)

func TestLineJoiner(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"single lines", []string{"hello", "/mode direct"}, []string{"hello", "/mode direct"}},
		{"backslash", []string{`first \`, `second\`, "third"}, []string{"first \nsecond\nthird"}},
		{"escaped backslash ends the line", []string{`path C:\\`, "next"}, []string{`path C:\\`, "next"}},
		{"fence keeps blank lines", []string{`"""`, "def f():", "", "    return 1", `"""`, "after"}, []string{"def f():\n\n    return 1", "after"}},
		{"fence inside a fence block is text", []string{`"""`, `a \`, `"""`}, []string{`a \`}},
		{"unclosed fence is flushed", []string{`"""`, "line one", "line two"}, []string{"line one\nline two"}},
		{"final backslash is flushed", []string{`dangling \`}, []string{"dangling "}},
	}
	for _, c := range cases {
		var j LineJoiner
		var got []string
		for _, l := range c.lines {
			if msg, ok := j.Feed(l); ok {
				got = append(got, msg)
			}
		}
		if msg, ok := j.Flush(); ok {
			got = append(got, msg)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if j.Pending() {
			t.Errorf("%s: still pending after Flush", c.name)
		}
	}
}
