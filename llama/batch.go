package llama

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Batch is a set of tokens, each with a position, the sequences it belongs to
// and whether its logits are wanted. One Batch can mix many sequences: that
// is how parallel decoding works. Its memory is C memory: Close it.
type Batch struct {
	c        C.struct_llama_batch
	capacity int
	perToken int
	tokens   []C.llama_token
	pos      []C.llama_pos
	nSeq     []C.int32_t
	seqIDs   []*C.llama_seq_id
	logits   []C.int8_t
}

// NewBatch allocates a batch of up to capacity tokens, each belonging to at
// most seqsPerToken sequences (1 unless prompts are shared).
func NewBatch(capacity, seqsPerToken int) (*Batch, error) {
	if capacity <= 0 || seqsPerToken <= 0 {
		return nil, fmt.Errorf("new batch: capacity %d and seqsPerToken %d must be positive", capacity, seqsPerToken)
	}
	b := &Batch{capacity: capacity, perToken: seqsPerToken}
	b.c = C.llama_batch_init(C.int32_t(capacity), 0, C.int32_t(seqsPerToken))
	b.tokens = unsafe.Slice(b.c.token, capacity)
	b.pos = unsafe.Slice(b.c.pos, capacity)
	b.nSeq = unsafe.Slice(b.c.n_seq_id, capacity)
	b.seqIDs = unsafe.Slice(b.c.seq_id, capacity)
	b.logits = unsafe.Slice(b.c.logits, capacity)
	trackLeak(b, "Batch", func(b *Batch) bool { return b.tokens != nil })
	return b, nil
}

// Close frees the batch.
func (b *Batch) Close() {
	if b.tokens != nil {
		C.llama_batch_free(b.c)
		b.tokens = nil
	}
}

// Len is the number of tokens in the batch.
func (b *Batch) Len() int { return int(b.c.n_tokens) }

// Cap is the most tokens the batch holds.
func (b *Batch) Cap() int { return b.capacity }

// Clear empties the batch for reuse.
func (b *Batch) Clear() { b.c.n_tokens = 0 }

// Add appends a token at position pos of sequence seq; it returns the batch
// index of the token, which Logits and Sampler.Sample take when logits is true.
func (b *Batch) Add(t Token, pos Pos, seq SeqID, logits bool) (int, error) {
	return b.AddShared(t, pos, []SeqID{seq}, logits)
}

// AddShared appends a token that belongs to several sequences at once
// (a prompt prefix they share).
func (b *Batch) AddShared(t Token, pos Pos, seqs []SeqID, logits bool) (int, error) {
	if b.tokens == nil {
		return 0, fmt.Errorf("batch: %w", ErrClosed)
	}
	i := int(b.c.n_tokens)
	if i >= b.capacity {
		return 0, fmt.Errorf("%w: batch is full (%d tokens)", ErrInvalidBatch, b.capacity)
	}
	if len(seqs) == 0 || len(seqs) > b.perToken {
		return 0, fmt.Errorf("%w: token belongs to %d sequences, batch allows 1..%d", ErrInvalidBatch, len(seqs), b.perToken)
	}
	if pos < 0 {
		return 0, fmt.Errorf("%w: negative position %d", ErrInvalidBatch, pos)
	}
	b.tokens[i] = C.llama_token(t)
	b.pos[i] = C.llama_pos(pos)
	b.nSeq[i] = C.int32_t(len(seqs))
	ids := unsafe.Slice(b.seqIDs[i], b.perToken)
	for j, s := range seqs {
		ids[j] = C.llama_seq_id(s)
	}
	if logits {
		b.logits[i] = 1
	} else {
		b.logits[i] = 0
	}
	b.c.n_tokens++
	return i, nil
}

// validate checks token and sequence ids before llama.cpp sees them: some
// bad values would trip an assertion in C instead of returning an error.
func (b *Batch) validate(nVocab, nSeq int) error {
	n := int(b.c.n_tokens)
	for i := 0; i < n; i++ {
		if t := int(b.tokens[i]); t < 0 || t >= nVocab {
			return fmt.Errorf("%w: token %d at batch index %d is outside the vocabulary of %d", ErrInvalidBatch, t, i, nVocab)
		}
		ids := unsafe.Slice(b.seqIDs[i], int(b.nSeq[i]))
		for _, s := range ids {
			if int(s) < 0 || int(s) >= nSeq {
				return fmt.Errorf("%w: sequence %d at batch index %d outside 0..%d", ErrInvalidBatch, int(s), i, nSeq-1)
			}
		}
	}
	return nil
}
