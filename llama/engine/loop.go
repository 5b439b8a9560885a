package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/loglik"
)

// slot is one sequence of the shared context and the request running in it.
//
// Invariant: the KV cache of seq holds exactly the tokens before pos. A
// phase's generated token k sits at position genStart+k once fed; the most
// recently sampled token is fed by the next step (hasNext), so when a phase
// ends, the tokens to carry into the next phase are worked out in endPhase.
type slot struct {
	seq     llama.SeqID
	job     *job
	sampler *llama.Sampler

	phase    int
	prefixes [][]llama.Token // tokenised prefix of every phase
	pending  []llama.Token   // prompt tokens not yet decoded
	chunk    int             // pending tokens carried by the current batch
	pos      llama.Pos       // next position in the sequence
	next     llama.Token     // sampled token to feed in the next step
	hasNext  bool
	outIdx   int // batch index whose logits this slot samples, -1 if none

	genStart llama.Pos // position of the phase's first generated token
	all      []byte    // bytes generated in this phase
	starts   []int     // byte offset in all where each generated token starts
	gen      []llama.Token
	valid    int // length of the valid-UTF-8 prefix of all
	emitted  int // bytes already passed to OnText
	maxStop  int
	outputs  []PhaseOutput
	full     bool // the phase ends because the slot's context is full
	nPrompt  int
	cached   int // prompt tokens copied from the prefix cache
	// lps are the log-probabilities of this phase's tokens (with
	// Request.LogProbs); sampledLP is the last sampled token's, which
	// accept files once it knows the token is output.
	lps       []TokenLogProb
	sampledLP *TokenLogProb
}

func (e *Engine) loop() {
	defer close(e.done)
	slots := make([]*slot, e.opts.Parallel)
	batch, err := llama.NewBatch(e.lctx.BatchSize(), 1)
	if err != nil {
		e.failAll(slots, err)
		return
	}
	defer batch.Close()
	e.lctx.ClearKV()
	rr := 0 // round-robin start for prompt chunks, so no prompt starves
	for {
		// Admit queued work into free slots; block only when idle.
		active := 0
		for _, s := range slots {
			if s != nil {
				active++
			}
		}
		for i := range slots {
			if slots[i] != nil {
				continue
			}
			var j *job
			if active == 0 {
				select {
				case j = <-e.queue:
				case <-e.closing:
					e.failAll(slots, ErrClosed)
					return
				}
			} else {
				select {
				case j = <-e.queue:
				case <-e.closing:
					e.failAll(slots, ErrClosed)
					return
				default:
				}
			}
			if j == nil {
				break
			}
			if s := e.admit(llama.SeqID(i), j); s != nil {
				slots[i] = s
				active++
			}
		}
		select {
		case <-e.closing:
			e.failAll(slots, ErrClosed)
			return
		default:
		}
		if active == 0 {
			continue
		}
		e.cancelDone(slots)
		e.step(slots, batch, &rr)
	}
}

// admit prepares a slot for a job, or answers the job at once when it cannot
// run (bad sampler options, prompt longer than a slot's context).
func (e *Engine) admit(seq llama.SeqID, j *job) *slot {
	s := &slot{seq: seq, job: j, outIdx: -1}
	// A prompt that cannot fit is refused by its byte length before it
	// reaches the tokenizer: tokenizing a hostile megabyte would stall every
	// sequence in this loop, and it could not run anyway.
	limit := e.model.MaxTextBytes(e.opts.SlotContext)
	for i, p := range j.req.Phases {
		if len(p.Prefix) > limit {
			e.reply(s, fmt.Errorf("%w: phase %d is %d bytes, more than the %d tokens each sequence holds can cover", ErrPromptTooLong, i, len(p.Prefix), e.opts.SlotContext))
			return nil
		}
		toks, err := e.model.Tokenize(p.Prefix, i == 0, true)
		if errors.Is(err, llama.ErrTextTooLong) {
			err = fmt.Errorf("%w: %w", ErrPromptTooLong, err)
		}
		if err != nil {
			e.reply(s, fmt.Errorf("tokenize phase %d: %w", i, err))
			return nil
		}
		s.prefixes = append(s.prefixes, toks)
		s.nPrompt += len(toks)
	}
	if len(s.prefixes[0]) == 0 {
		e.reply(s, fmt.Errorf("request %s: prompt tokenises to nothing", j.req.ID))
		return nil
	}
	if n := len(s.prefixes[0]); n+1 > e.opts.SlotContext {
		e.reply(s, fmt.Errorf("%w: %d prompt tokens, each sequence holds %d", ErrPromptTooLong, n, e.opts.SlotContext))
		return nil
	}
	smp, err := llama.NewSampler(e.model, j.req.Sampling)
	if err != nil {
		e.reply(s, err)
		return nil
	}
	s.sampler = smp
	s.startPhase(0, s.prefixes[0])
	if e.opts.PrefixCache && j.req.SharedPrefix != "" && strings.HasPrefix(j.req.Phases[0].Prefix, j.req.SharedPrefix) {
		e.usePrefixCache(s, j.req.SharedPrefix)
	}
	return s
}

// minCachedPrefix is the fewest shared tokens worth a cache copy.
const minCachedPrefix = 16

// usePrefixCache starts s from the cached shared prefix: it (re)computes the
// cache when the shared text changed, copies the cache sequence into s's
// sequence, and keeps only the tokens that really match s's prompt (a
// tokenizer may merge across the boundary of the shared text).
func (e *Engine) usePrefixCache(s *slot, shared string) {
	if shared != e.cacheText {
		if err := e.fillPrefixCache(shared); err != nil {
			e.cacheText, e.cacheToks = "", nil
			return
		}
	}
	toks := s.prefixes[0]
	k := 0
	for k < len(e.cacheToks) && k < len(toks)-1 && toks[k] == e.cacheToks[k] {
		k++
	}
	if k < minCachedPrefix {
		return
	}
	if err := e.copyCache(s.seq); err != nil {
		return
	}
	if k < len(e.cacheToks) {
		if err := e.lctx.RemoveTokens(s.seq, llama.Pos(k), -1); err != nil {
			_ = e.lctx.RemoveSeq(s.seq)
			return
		}
	}
	s.pos = llama.Pos(k)
	s.pending = toks[k:]
	s.genStart = s.pos + llama.Pos(len(s.pending))
	s.cached = k
	e.cachedTokens.Add(int64(k))
}

// fillPrefixCache decodes shared into the cache sequence. It runs inside the
// loop, between steps, once per distinct shared text.
func (e *Engine) fillPrefixCache(shared string) error {
	toks, err := e.model.Tokenize(shared, true, true)
	if err != nil {
		return err
	}
	if len(toks) < minCachedPrefix || len(toks)+1 > e.opts.SlotContext {
		return fmt.Errorf("shared prefix of %d tokens not worth caching", len(toks))
	}
	e.cacheState = nil
	if err := e.lctx.RemoveSeq(e.cacheSeq); err != nil {
		return err
	}
	b, err := llama.NewBatch(e.lctx.BatchSize(), 1)
	if err != nil {
		return err
	}
	defer b.Close()
	for start := 0; start < len(toks); start += b.Cap() {
		b.Clear()
		for i := start; i < len(toks) && i < start+b.Cap(); i++ {
			if _, err := b.Add(toks[i], llama.Pos(i), e.cacheSeq, false); err != nil {
				return err
			}
		}
		t0 := time.Now()
		err := e.lctx.Decode(b)
		e.busyNs.Add(int64(time.Since(t0)))
		if err != nil {
			_ = e.lctx.RemoveSeq(e.cacheSeq)
			return err
		}
	}
	e.promptTokens.Add(int64(len(toks)))
	e.cacheText, e.cacheToks = shared, toks
	e.cacheState = nil
	if !e.lctx.UnifiedKV() {
		// A saved copy restores only the prefix's cells; see copyCache.
		e.cacheState, _ = e.lctx.SaveSeq(e.cacheSeq)
	}
	return nil
}

// copyCache puts the cached prefix into sequence dst. In one shared pool
// of cells (UnifiedKV) the cells are shared, not copied. With a stream per
// sequence, llama.cpp's sequence copy duplicates the cache's whole stream
// (all its cells, used or not: 64 MB for a 4096-cell stream of an 8-layer,
// 512-wide model) and makes the next decode re-plan its graph, for every
// row; restoring the saved prefix writes only the prefix's cells.
func (e *Engine) copyCache(dst llama.SeqID) error {
	if e.cacheState != nil {
		if err := e.lctx.LoadSeq(e.cacheState, dst); err == nil {
			return nil
		}
		_ = e.lctx.RemoveSeq(dst)
	}
	return e.lctx.CopySeq(e.cacheSeq, dst, -1, -1)
}

func (s *slot) startPhase(i int, pending []llama.Token) {
	s.phase = i
	s.pending = pending
	s.all = s.all[:0]
	s.starts = s.starts[:0]
	s.gen = s.gen[:0]
	s.lps = nil
	s.valid = 0
	s.emitted = 0
	s.hasNext = false
	s.genStart = s.pos + llama.Pos(len(pending))
	s.maxStop = 0
	for _, st := range s.job.req.Phases[i].Stop {
		if len(st) > s.maxStop {
			s.maxStop = len(st)
		}
	}
}

// step builds one batch (a token per generating slot, and chunks of pending
// prompts up to the batch's capacity), decodes it and samples every slot
// that has logits.
//
// The batch lists its tokens in sequence order, each sequence's tokens
// together. With one KV stream per sequence llama.cpp splits a batch into
// micro-batches of consecutive sequence ids (split_equal, sequential), and
// every micro-batch is a full pass over the weights: generated tokens listed
// before a prompt chunk of a lower sequence would be split off into one pass
// of their own, and the gap would split them again.
func (e *Engine) step(slots []*slot, b *llama.Batch, rr *int) {
	b.Clear()
	room := b.Cap()
	for _, s := range slots {
		if s == nil {
			continue
		}
		s.outIdx = -1
		s.chunk = 0
		if s.hasNext {
			room--
		}
	}
	// Prompt chunks share what generation leaves of the batch, starting
	// at a rotating slot so that no prompt starves.
	n := len(slots)
	for k := 0; k < n && room > 0; k++ {
		s := slots[(*rr+k)%n]
		if s == nil || s.hasNext || len(s.pending) == 0 {
			continue
		}
		s.chunk = min(len(s.pending), room)
		room -= s.chunk
	}
	*rr = (*rr + 1) % n
	for _, s := range slots {
		if s == nil {
			continue
		}
		if s.hasNext {
			idx, err := b.Add(s.next, s.pos, s.seq, true)
			if err != nil {
				s.hasNext = false
				e.finish(slots, s, err)
				continue
			}
			s.outIdx = idx
			continue
		}
		for t := 0; t < s.chunk; t++ {
			last := t == s.chunk-1 && s.chunk == len(s.pending)
			idx, err := b.Add(s.pending[t], s.pos+llama.Pos(t), s.seq, last)
			if err != nil {
				s.chunk = 0
				e.finish(slots, s, err)
				break
			}
			if last {
				s.outIdx = idx
			}
		}
	}
	if b.Len() == 0 {
		return
	}
	start := time.Now()
	err := e.lctx.Decode(b)
	took := time.Since(start)
	e.busyNs.Add(int64(took))
	step := e.steps.Add(1)
	if err != nil {
		e.decodeFailed(slots, err)
		return
	}
	for _, s := range slots {
		if s == nil {
			continue
		}
		if s.hasNext {
			s.pos++
			s.hasNext = false
		}
		if s.chunk > 0 {
			s.pending = s.pending[s.chunk:]
			s.pos += llama.Pos(s.chunk)
			e.promptTokens.Add(int64(s.chunk))
			s.chunk = 0
		}
	}
	if e.opts.Trace != nil {
		e.trace(slots, step, b.Len(), took)
	}
	for _, s := range slots {
		if s == nil || s.outIdx < 0 {
			continue
		}
		tok, err := s.sampler.Sample(e.lctx, s.outIdx)
		if err != nil {
			e.finish(slots, s, err)
			continue
		}
		e.generated.Add(1)
		s.sampledLP = nil
		if s.job.req.LogProbs {
			if s.sampledLP, err = e.logProb(s, tok); err != nil {
				e.finish(slots, s, err)
				continue
			}
		}
		e.accept(slots, s, tok)
	}
}

// text is the phase's output so far (complete runes only).
func (s *slot) textSoFar() string { return string(s.all[:s.valid]) }

// advanceValid extends the valid-UTF-8 prefix; an unfinished rune at the end
// waits for the next token, an invalid byte elsewhere passes through.
func (s *slot) advanceValid() {
	for s.valid < len(s.all) {
		rest := s.all[s.valid:]
		if !utf8.FullRune(rest) {
			return
		}
		_, size := utf8.DecodeRune(rest)
		s.valid += size
	}
}

// accept handles one sampled token: end of generation, stop strings, limits,
// and the move to the next phase or the end of the request.
func (e *Engine) accept(slots []*slot, s *slot, tok llama.Token) {
	ph := s.job.req.Phases[s.phase]
	if e.model.IsEOG(tok) {
		e.endPhase(slots, s, FinishStop, -1)
		return
	}
	piece, err := e.model.TokenPiece(tok, false)
	if err != nil {
		e.finish(slots, s, err)
		return
	}
	s.starts = append(s.starts, len(s.all))
	s.gen = append(s.gen, tok)
	if s.sampledLP != nil {
		s.sampledLP.Bytes = piece
		s.lps = append(s.lps, *s.sampledLP)
	}
	s.all = append(s.all, piece...)
	s.advanceValid()
	if len(ph.Stop) > 0 {
		// Only the tail can hold a stop string that this token completed.
		from := min(max(0, s.starts[len(s.starts)-1]-s.maxStop), s.valid)
		tail := string(s.all[from:s.valid])
		for _, st := range ph.Stop {
			if st == "" {
				continue
			}
			if i := strings.Index(tail, st); i >= 0 {
				e.endPhase(slots, s, FinishStop, from+i)
				return
			}
		}
	}
	e.emit(s, false)
	s.next = tok
	if len(s.gen) >= ph.MaxTokens {
		e.endPhase(slots, s, FinishLength, -1)
		return
	}
	if int(s.pos)+1 >= e.opts.SlotContext {
		s.full = true
		e.endPhase(slots, s, FinishLength, -1)
		return
	}
	s.hasNext = true
}

// emit streams the text that can no longer turn into a stop string.
func (e *Engine) emit(s *slot, final bool) {
	cb := s.job.req.OnText
	if cb == nil {
		return
	}
	upto := s.valid
	if !final && s.maxStop > 0 {
		upto -= s.maxStop - 1
		for upto > s.emitted && upto < s.valid && !utf8.RuneStart(s.all[upto]) {
			upto--
		}
	}
	if upto > s.emitted {
		cb(s.phase, string(s.all[s.emitted:upto]))
		s.emitted = upto
	}
}

// endPhase closes the current phase. cut >= 0 truncates the output there
// (a stop string began at cut). With phases left, the sequence's cache is
// brought in line with the kept output before the next prefix is queued:
// tokens past the cut are removed, the part of a token before the cut is
// re-tokenised, and a sampled-but-unfed token is fed with the prefix.
func (e *Engine) endPhase(slots []*slot, s *slot, reason FinishReason, cut int) {
	keep := s.valid
	if cut >= 0 {
		keep = cut
	}
	if s.emitted > keep {
		s.emitted = keep
	}
	out := string(s.all[:keep])
	if cut < 0 {
		out = string(s.all) // a trailing partial rune is kept as bytes
	}
	if cb := s.job.req.OnText; cb != nil && len(out) > s.emitted {
		cb(s.phase, out[s.emitted:])
	}
	lps := s.lps
	if cut >= 0 {
		// Tokens that start at or after the cut are not in the text.
		n := 0
		for n < len(lps) && n < len(s.starts) && s.starts[n] < cut {
			n++
		}
		lps = lps[:n]
	}
	s.outputs = append(s.outputs, PhaseOutput{Text: strings.ToValidUTF8(out, "\uFFFD"), Tokens: len(s.gen), Finish: reason, LogProbs: lps, ContextFull: s.full})
	s.full = false
	if cb := s.job.req.OnPhaseEnd; cb != nil {
		cb(s.phase, reason)
	}
	if s.phase+1 >= len(s.job.req.Phases) {
		e.finish(slots, s, nil)
		return
	}
	// Tokens 0..fed-1 of this phase are in the cache; the last sampled one
	// is not (unless generation ended on an end-of-generation token, which
	// is never fed and never counted).
	fed := len(s.gen)
	if reason != FinishStop || cut >= 0 {
		fed = max(0, len(s.gen)-1)
	}
	var carry []llama.Token
	if cut >= 0 {
		// First token that reaches past the cut.
		k := 0
		for k < len(s.gen) && s.starts[k]+pieceLen(s, k) <= cut {
			k++
		}
		if k < fed {
			if err := e.lctx.RemoveTokens(s.seq, s.genStart+llama.Pos(k), -1); err != nil {
				e.finish(slots, s, err)
				return
			}
			s.pos = s.genStart + llama.Pos(k)
			fed = k
		}
		if k < len(s.gen) && s.starts[k] < cut {
			part, err := e.model.Tokenize(string(s.all[s.starts[k]:cut]), false, false)
			if err != nil {
				e.finish(slots, s, err)
				return
			}
			carry = append(carry, part...)
		}
	} else if fed < len(s.gen) {
		carry = append(carry, s.gen[fed:]...)
	}
	next := append(carry, s.prefixes[s.phase+1]...)
	if int(s.pos)+len(next)+1 >= e.opts.SlotContext {
		// No room for the next phase: report it as cut off by length.
		for i := s.phase + 1; i < len(s.job.req.Phases); i++ {
			s.outputs = append(s.outputs, PhaseOutput{Finish: FinishLength, ContextFull: true})
		}
		e.finish(slots, s, nil)
		return
	}
	// validate() guarantees later phases have a prefix, so next is never
	// empty and the new phase always starts from fresh logits.
	s.startPhase(s.phase+1, next)
}

// pieceLen is the byte length of generated token k.
func pieceLen(s *slot, k int) int {
	if k+1 < len(s.starts) {
		return s.starts[k+1] - s.starts[k]
	}
	return len(s.all) - s.starts[k]
}

// finish frees the slot and answers its job.
func (e *Engine) finish(slots []*slot, s *slot, err error) {
	if err != nil && len(s.outputs) < len(s.job.req.Phases) {
		s.outputs = append(s.outputs, PhaseOutput{Text: s.textSoFar(), Tokens: len(s.gen), Finish: FinishError})
	}
	_ = e.lctx.RemoveSeq(s.seq)
	if s.sampler != nil {
		s.sampler.Close()
	}
	slots[s.seq] = nil
	e.reply(s, err)
}

func (e *Engine) reply(s *slot, err error) {
	e.completed.Add(1)
	s.job.reply <- Result{
		ID:           s.job.req.ID,
		Tag:          s.job.req.Tag,
		Phases:       s.outputs,
		PromptTokens: s.nPrompt,
		CachedTokens: s.cached,
		Err:          err,
		Elapsed:      time.Since(s.job.start),
	}
}

// cancelDone ends requests whose context is over.
func (e *Engine) cancelDone(slots []*slot) {
	for _, s := range slots {
		if s == nil || s.job.req.Ctx == nil {
			continue
		}
		if err := s.job.req.Ctx.Err(); err != nil {
			s.outputs = append(s.outputs, PhaseOutput{Text: s.textSoFar(), Tokens: len(s.gen), Finish: FinishCancelled})
			e.finish(slots, s, err)
		}
	}
}

// decodeFailed handles a failed decode. A full cache (possible only when
// slot contexts overlap) ends the longest sequence; other errors end every
// request in the batch, since the batch cannot be retried as is.
func (e *Engine) decodeFailed(slots []*slot, err error) {
	if errors.Is(err, llama.ErrContextFull) {
		var longest *slot
		for _, s := range slots {
			if s != nil && (longest == nil || s.pos > longest.pos) {
				longest = s
			}
		}
		if longest != nil {
			e.finish(slots, longest, err)
		}
		for _, s := range slots {
			if s != nil {
				s.chunk = 0
			}
		}
		return
	}
	for _, s := range slots {
		if s != nil {
			e.finish(slots, s, err)
		}
	}
}

func (e *Engine) failAll(slots []*slot, err error) {
	for _, s := range slots {
		if s != nil {
			s.outputs = append(s.outputs, PhaseOutput{Text: s.textSoFar(), Tokens: len(s.gen), Finish: FinishCancelled})
			e.finish(slots, s, err)
		}
	}
	for {
		select {
		case j := <-e.queue:
			e.reply(&slot{job: j}, err)
		default:
			return
		}
	}
}

// logProb is the log-probability of tok, and the request's top
// alternatives, under the raw logits of the slot's output (the samplers
// work on a copy, so these are the model's own distribution).
func (e *Engine) logProb(s *slot, tok llama.Token) (*TokenLogProb, error) {
	var err error
	if e.logits, err = e.lctx.Logits(s.outIdx, e.logits); err != nil {
		return nil, err
	}
	d := loglik.NewDistribution(e.logits)
	lp := &TokenLogProb{Token: tok, LogProb: d.LogProb(int(tok))}
	for _, t := range d.Top(s.job.req.TopLogProbs) {
		b, err := e.model.TokenPiece(llama.Token(t.Token), false)
		if err != nil {
			return nil, err
		}
		lp.Top = append(lp.Top, TopLogProb{Token: llama.Token(t.Token), Bytes: b, LogProb: t.LogProb})
	}
	return lp, nil
}

// trace reports a step to Options.Trace.
func (e *Engine) trace(slots []*slot, step int64, tokens int, took time.Duration) {
	t := StepTrace{Step: step, Tokens: tokens, Decode: took}
	for _, s := range slots {
		if s == nil {
			continue
		}
		c, err := e.lctx.KVCells(s.seq)
		if err != nil {
			continue
		}
		t.Seqs = append(t.Seqs, SeqTrace{Seq: s.seq, Pos: int(s.pos), Cells: c})
		t.NKV = max(t.NKV, c.Attended)
	}
	e.opts.Trace(t)
}
