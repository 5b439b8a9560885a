package pipeline

import "github.com/tidwall/gjson"

// SeqContextField is the field in which a row that could not run for lack
// of context (a prompt longer than a sequence, texts longer than the
// scoring window) records how many tokens a sequence held. generate and
// eval write it on such rows only.
const SeqContextField = "seq_ctx"

// RedoCapacity is the Job.Redo of generate and eval: a row that records in
// SeqContextField a sequence smaller than seqContext (this run's, from a
// raised --ctx) is redone; rows without the field, and every row when
// seqContext is 0 (unknown), stay done. A rerun with the same or a smaller
// context therefore redoes nothing.
func RedoCapacity(seqContext int) func(row []byte) bool {
	if seqContext <= 0 {
		return nil
	}
	return func(row []byte) bool {
		held := gjson.GetBytes(row, SeqContextField)
		return held.Type == gjson.Number && held.Int() > 0 && held.Int() < int64(seqContext)
	}
}
