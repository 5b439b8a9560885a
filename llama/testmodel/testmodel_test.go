package testmodel

import (
	"fmt"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }
func (r *recorder) Errorf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) TempDir() string              { return "" }
func (r *recorder) Setenv(string, string)        {}
func (r *recorder) Cleanup(func())               {}
func (r *recorder) Name() string                 { return "recorder" }
func (r *recorder) Failed() bool                 { return r.fatal != "" }
func (r *recorder) Skipped() bool                { return r.skip != "" }
func (r *recorder) Fatal(args ...any)            { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)             { r.skip = fmt.Sprint(args...) }
func (r *recorder) Error(args ...any)            { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Log(args ...any)              {}
func (r *recorder) FailNow()                     { r.fatal = "FailNow" }
func (r *recorder) SkipNow()                     { r.skip = "SkipNow" }
func (r *recorder) Fail()                        { r.fatal = "Fail" }

// TestMissingTokenizerFailsInCI checks that a real-tokenizer test skips
// on a developer machine without the tokenizer, and fails under CI=true.
func TestMissingTokenizerFailsInCI(t *testing.T) {
	t.Setenv("CODEPLAN_TOKENIZERS", t.TempDir()) // an empty cache
	t.Setenv("CI", "")
	r := &recorder{}
	Tokenizer(r, "llama3")
	if r.skip == "" || r.fatal != "" {
		t.Errorf("outside CI: skip %q, fatal %q; want a skip", r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	r = &recorder{}
	Tokenizer(r, "llama3")
	if r.fatal == "" || r.skip != "" {
		t.Errorf("CI=true: skip %q, fatal %q; want a failure", r.skip, r.fatal)
	}
}
