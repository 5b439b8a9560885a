package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestJSONOutputParses(t *testing.T) {
	var buf bytes.Buffer
	log, err := Setup(&buf, "json", "info", false)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("file", "a.jsonl").Int("row", 7).Msg("hello")

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output %q is not JSON: %v", buf.String(), err)
	}
	want := map[string]any{"level": "info", "message": "hello", "file": "a.jsonl", "row": float64(7)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %q = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["time"]; !ok {
		t.Errorf("no time field in %v", got)
	}
}

func TestLevelsFilter(t *testing.T) {
	tests := []struct {
		level string
		quiet bool
		want  []string // messages that must appear, in order
	}{
		{"debug", false, []string{"d", "i", "w", "e"}},
		{"", false, []string{"i", "w", "e"}},
		{"INFO", false, []string{"i", "w", "e"}},
		{"warn", false, []string{"w", "e"}},
		{"warning", false, []string{"w", "e"}},
		{"error", false, []string{"e"}},
		{"debug", true, []string{"w", "e"}},
		{"info", true, []string{"w", "e"}},
		// -q never lowers a stricter level.
		{"error", true, []string{"e"}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log, err := Setup(&buf, "json", tt.level, tt.quiet)
		if err != nil {
			t.Fatalf("level %q: %v", tt.level, err)
		}
		log.Debug().Msg("d")
		log.Info().Msg("i")
		log.Warn().Msg("w")
		log.Error().Msg("e")

		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var rec struct{ Message string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("level %q: bad line %q: %v", tt.level, line, err)
			}
			got = append(got, rec.Message)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("level %q quiet=%v: got %v, want %v", tt.level, tt.quiet, got, tt.want)
		}
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct{ format, level, wantInErr string }{
		{"xml", "info", `"xml"`},
		{"json", "verbose", `"verbose"`},
		{"json", "trace", `"trace"`},
	}
	for _, tt := range tests {
		_, err := Setup(&bytes.Buffer{}, tt.format, tt.level, false)
		if err == nil {
			t.Errorf("Setup(%q, %q): no error", tt.format, tt.level)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantInErr) {
			t.Errorf("Setup(%q, %q) error %q does not name %s", tt.format, tt.level, err, tt.wantInErr)
		}
	}
}

var consoleLine = regexp.MustCompile(`^\d\d:\d\d:\d\d INF hello row=7\n$`)

func TestFormatChoice(t *testing.T) {
	tests := []struct {
		format  string
		tty     bool
		console bool
	}{
		{"", false, false},
		{"auto", false, false},
		{"", true, true},
		{"console", false, true},
		{"Console", true, true},
		{"json", true, false},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log, err := setup(&buf, tt.format, "info", false, tt.tty)
		if err != nil {
			t.Fatal(err)
		}
		log.Info().Int("row", 7).Msg("hello")
		out := buf.String()
		isJSON := json.Valid(buf.Bytes())
		if isJSON == tt.console {
			t.Errorf("format %q tty=%v: got %q, want console=%v", tt.format, tt.tty, out, tt.console)
		}
		if tt.console && !tt.tty && !consoleLine.MatchString(out) {
			t.Errorf("format %q without tty: %q is not a plain console line", tt.format, out)
		}
		if tt.console && tt.tty && !strings.Contains(out, "\x1b[") {
			t.Errorf("format %q on a tty: expected colour codes in %q", tt.format, out)
		}
	}
}

func TestIsTerminalOnBuffer(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a bytes.Buffer is not a terminal")
	}
}
