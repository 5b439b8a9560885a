package engine

import "errors"

// Permanent reports whether a request failed in a way that retrying the
// same request cannot fix (today: its prompt does not fit in a sequence's
// context). Row loops record such rows as done, with their error, instead
// of retrying them on every rerun; other errors are transient.
func Permanent(err error) bool {
	return errors.Is(err, ErrPromptTooLong)
}
