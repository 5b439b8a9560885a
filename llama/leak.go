//go:build !invariants

package llama

// trackLeak is a no-op in ordinary builds; builds with the invariants tag
// (leak_invariants.go) report objects collected while still open.
func trackLeak[T any](*T, string, func(*T) bool) {}

// Leaks returns the objects that were garbage-collected without Close. It
// is always empty unless the binary was built with -tags invariants.
func Leaks() []string { return nil }
