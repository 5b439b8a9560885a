package planner

import (
	"strings"
	"testing"
)

// TestMessagesInUserTerms checks that errors users see name no package or
// Go type ("planner:", "FilterConfig.MaxWords"), and that the word-limit
// reasons name the flags that set them.
func TestMessagesInUserTerms(t *testing.T) {
	_, err1 := ParseMode("essay")
	_, err2 := ParseModes("direct,,codeplan")
	_, err3 := ParseFormat("chat")
	for _, err := range []error{err1, err2, err3} {
		if err == nil || strings.Contains(err.Error(), "planner") {
			t.Errorf("error %v: want one without the package name", err)
		}
	}
	if d := TooLong.Description(); !strings.Contains(d, "--max-words") || strings.Contains(d, "FilterConfig") {
		t.Errorf("too_long: %q", d)
	}
	if d := TooShort.Description(); !strings.Contains(d, "--min-words") || strings.Contains(d, "FilterConfig") {
		t.Errorf("too_short: %q", d)
	}
}
