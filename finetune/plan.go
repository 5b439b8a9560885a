package finetune

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// microBatch is one forward/backward pass: whole examples packed into at
// most Batch tokens, each its own sequence (they do not attend to each
// other).
type microBatch struct {
	examples []int
	tokens   int
	scored   int
}

// step is one optimizer step: GradAccum micro-batches (fewer at the end of
// an epoch) whose gradients are summed.
type step struct {
	epoch  int // 0-based
	micro  []microBatch
	tokens int
	scored int
}

// pack packs the examples idx, in that order, into micro-batches of at most
// batchTokens tokens and lm.MaxTrainSequences sequences.
func pack(ex []Example, idx []int, batchTokens int) []microBatch {
	var out []microBatch
	var cur microBatch
	for _, i := range idx {
		n := len(ex[i].Tokens)
		if len(cur.examples) > 0 && (cur.tokens+n > batchTokens || len(cur.examples) == lm.MaxTrainSequences) {
			out = append(out, cur)
			cur = microBatch{}
		}
		cur.examples = append(cur.examples, i)
		cur.tokens += n
		cur.scored += ex[i].Scored()
	}
	if len(cur.examples) > 0 {
		out = append(out, cur)
	}
	return out
}

// planSteps lays out every optimizer step of the run. Each epoch visits the
// training examples in an order drawn from (seed, epoch), so a resumed run
// sees exactly the batches an uninterrupted one would.
func planSteps(ex []Example, train []int, epochs int, seed uint64, batchTokens, gradAccum int) []step {
	var steps []step
	for e := 0; e < epochs; e++ {
		order := append([]int(nil), train...)
		r := rand.New(rand.NewPCG(seed, 0x0e90c4^uint64(e)))
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		micro := pack(ex, order, batchTokens)
		for i := 0; i < len(micro); i += gradAccum {
			s := step{epoch: e, micro: micro[i:min(i+gradAccum, len(micro))]}
			for _, m := range s.micro {
				s.tokens += m.tokens
				s.scored += m.scored
			}
			steps = append(steps, s)
		}
	}
	return steps
}

// batchOf fills b with the examples of m.
func batchOf(b *lm.TrainBatch, ex []Example, m microBatch) error {
	b.Reset()
	for _, i := range m.examples {
		if _, err := b.Add(ex[i].Tokens, ex[i].Prefix); err != nil {
			return fmt.Errorf("%s: row %s: %w", ex[i].Source, ex[i].ID, err)
		}
	}
	return nil
}

// Schedule names a learning-rate schedule.
type Schedule string

// Learning-rate schedules. All start with a linear warm-up.
const (
	Cosine   Schedule = "cosine"   // cosine decay to zero
	Linear   Schedule = "linear"   // linear decay to zero
	Constant Schedule = "constant" // no decay
)

// ParseSchedule checks a schedule name.
func ParseSchedule(s string) (Schedule, error) {
	switch Schedule(s) {
	case Cosine, Linear, Constant:
		return Schedule(s), nil
	}
	return "", fmt.Errorf("unknown schedule %q (want cosine, linear or constant)", s)
}

// warmupSteps turns --warmup into steps: a fraction of all steps when below
// 1, a step count otherwise.
func warmupSteps(warmup float64, total int) int {
	if warmup <= 0 {
		return 0
	}
	if warmup < 1 {
		return int(math.Ceil(warmup * float64(total)))
	}
	return min(int(warmup), total)
}

// learningRate is the rate of 1-based optimizer step s of total: a linear
// ramp over the warm-up steps, then the decay. The decay never reaches zero
// within the run (the last step gets peak/(decay steps) under linear), since
// a step with rate zero would be wasted.
func learningRate(peak float64, sched Schedule, s, total, warmup int) float64 {
	if s <= warmup {
		return peak * float64(s) / float64(warmup)
	}
	n := total - warmup
	k := s - warmup - 1 // 0 .. n-1
	progress := float64(k) / float64(n)
	switch sched {
	case Linear:
		return peak * (1 - progress)
	case Cosine:
		return peak * 0.5 * (1 + math.Cos(math.Pi*progress))
	}
	return peak
}
