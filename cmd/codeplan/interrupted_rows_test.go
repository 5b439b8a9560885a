package main

import (
	"errors"
	"strings"
	"testing"
)

// TestUnfinishedRowsAfterSignal checks that rows stopped by a signal or by
// --drain-timeout make the run an interrupted one (exit 130), while rows
// that failed without a signal stay a runtime failure (exit 1).
func TestUnfinishedRowsAfterSignal(t *testing.T) {
	var ie interruptedError
	err := unfinishedRows(3, true)
	if !errors.As(err, &ie) {
		t.Errorf("unfinishedRows(3, interrupted): %v is not an interruptedError", err)
	}
	if !strings.Contains(err.Error(), "3 rows did not finish") {
		t.Errorf("message %q does not count the rows", err)
	}
	if err := unfinishedRows(2, false); errors.As(err, &ie) {
		t.Errorf("unfinishedRows(2, not interrupted) = %v, an interruptedError", err)
	}
}
