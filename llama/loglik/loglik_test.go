package loglik_test

import (
	"errors"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/loglik"
	"github.com/codeplan-dev/codeplan/llama/testmodel"
)

var model *llama.Model

func TestMain(m *testing.M) { testmodel.Main(m, &model) }

func newCtx(t *testing.T, size, seqs, batch int) *llama.Context {
	t.Helper()
	c, err := model.NewContext(llama.ContextOptions{ContextSize: size, Sequences: seqs, BatchSize: batch, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tokens(t *testing.T, s string) []llama.Token {
	t.Helper()
	toks, err := model.Tokenize(s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// direct decodes context+continuation on a fresh one-sequence context with
// logits at every position and computes each log-softmax by hand.
func direct(t *testing.T, r loglik.Request) []float64 {
	t.Helper()
	all := append(append([]llama.Token(nil), r.Context...), r.Continuation...)
	ctx := newCtx(t, 256, 1, 256)
	b, err := llama.NewBatch(len(all), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range all[:len(all)-1] {
		if _, err := b.Add(tok, llama.Pos(i), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for i := len(r.Context) - 1; i < len(all)-1; i++ {
		l, err := ctx.Logits(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, v := range l {
			sum += math.Exp(float64(v))
		}
		out = append(out, float64(l[all[i+1]])-math.Log(sum))
	}
	return out
}

func TestScoreMatchesDirectLogits(t *testing.T) {
	r := loglik.Request{Context: tokens(t, "The plan: "), Continuation: tokens(t, "add two numbers, then print.")}
	want := direct(t, r)
	s, err := loglik.NewScorer(newCtx(t, 256, 1, 512))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Score([]loglik.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].LogProbs) != len(r.Continuation) {
		t.Fatalf("%d log-probs for %d tokens", len(got[0].LogProbs), len(r.Continuation))
	}
	for i := range want {
		if d := math.Abs(got[0].LogProbs[i] - want[i]); d > 1e-6 || got[0].LogProbs[i] >= 0 {
			t.Errorf("token %d: %.8f, direct %.8f", i, got[0].LogProbs[i], want[i])
		}
	}
	sum := 0.0
	for _, v := range want {
		sum += v
	}
	if math.Abs(got[0].Sum()-sum) > 1e-5 || math.Abs(got[0].Mean()-sum/float64(len(want))) > 1e-6 {
		t.Errorf("sum %.6f mean %.6f, direct sum %.6f", got[0].Sum(), got[0].Mean(), sum)
	}
}

// Several requests share decode calls (4 sequences, batches of 16 tokens so
// requests straddle batches); each must score as it does alone.
func TestScoreBatchedEqualsAlone(t *testing.T) {
	t.Run("serial", testBatchedEqualsAlone)
	t.Run("parallel log-softmax", func(t *testing.T) {
		defer loglik.ForceParallel()()
		testBatchedEqualsAlone(t)
	})
}

func testBatchedEqualsAlone(t *testing.T) {
	reqs := []loglik.Request{
		{Context: tokens(t, "a"), Continuation: tokens(t, "bcdefgh ijk")},
		{Context: tokens(t, "Question: what is 2+2?\nAnswer:"), Continuation: tokens(t, " 4")},
		{Context: tokens(t, "xyz"), Continuation: tokens(t, "lorem ipsum dolor sit amet, consectetur")},
		{Context: tokens(t, "one"), Continuation: tokens(t, " two three")},
		{Context: tokens(t, "five"), Continuation: tokens(t, " six")}, // a second group
	}
	batched, err := loglik.NewScorer(newCtx(t, 4*128, 4, 16))
	if err != nil {
		t.Fatal(err)
	}
	defer batched.Close()
	got, err := batched.Score(reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		want := direct(t, r)
		for j := range want {
			if d := math.Abs(got[i].LogProbs[j] - want[j]); d > 1e-3 {
				t.Errorf("request %d token %d: batched %.6f, alone %.6f", i, j, got[i].LogProbs[j], want[j])
			}
		}
	}
}

func TestGreedy(t *testing.T) {
	// Build a continuation of greedy tokens by hand: each is the argmax
	// after the previous ones, so Greedy must hold; changing the last
	// token to a different one must clear it.
	s, err := loglik.NewScorer(newCtx(t, 256, 1, 256))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctxToks := tokens(t, "start")
	var cont []llama.Token
	for len(cont) < 5 {
		c := newCtx(t, 256, 1, 256)
		l := testmodel.LastLogits(t, c, 0, 0, append(append([]llama.Token(nil), ctxToks...), cont...))
		cont = append(cont, llama.Token(loglik.Argmax(l)))
	}
	res, err := s.Score([]loglik.Request{{Context: ctxToks, Continuation: cont}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Greedy {
		t.Errorf("greedy continuation not reported greedy: %v", res[0].LogProbs)
	}
	alt := append([]llama.Token(nil), cont...)
	alt[4] = (alt[4] + 1) % llama.Token(model.VocabSize())
	res, err = s.Score([]loglik.Request{{Context: ctxToks, Continuation: alt}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Greedy {
		t.Error("non-greedy continuation reported greedy")
	}
}

func TestTooLongAndEmpty(t *testing.T) {
	c := newCtx(t, 512, 2, 512)
	s, err := loglik.NewScorer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.Window()
	if w != c.ContextSize()/2 {
		t.Fatalf("window %d, want half of %d", w, c.ContextSize())
	}
	long := make([]llama.Token, w+2)
	_, err = s.Score([]loglik.Request{{Context: long[:1], Continuation: long[1:]}})
	if !errors.Is(err, loglik.ErrTooLong) {
		t.Errorf("%d tokens in a window of %d: %v, want ErrTooLong", w+2, w, err)
	}
	// w+1 tokens fit: the last one is scored, never fed.
	if _, err := s.Score([]loglik.Request{{Context: long[:1], Continuation: long[1 : w+1]}}); err != nil {
		t.Errorf("%d tokens: %v", w+1, err)
	}
	if _, err := s.Score([]loglik.Request{{Continuation: long[:3]}}); err == nil {
		t.Error("empty context accepted")
	}
	if _, err := s.Score([]loglik.Request{{Context: long[:3]}}); err == nil {
		t.Error("empty continuation accepted")
	}
}

func TestTextPairWholeAndChoices(t *testing.T) {
	txt, err := loglik.NewText(model, newCtx(t, 512, 2, 128))
	if err != nil {
		t.Fatal(err)
	}
	defer txt.Close()
	r, err := txt.Pair("Q: colour of the sky?\nA:", " blue")
	if err != nil {
		t.Fatal(err)
	}
	if want := tokens(t, " blue"); len(r.Continuation) != len(want) {
		t.Errorf("continuation %v, want %v", r.Continuation, want)
	}
	res, err := txt.Choices("Q: colour of the sky?\nA:", []string{" blue", " green and purple"})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []string{" blue", " green and purple"} {
		want := direct(t, loglik.Request{Context: tokens(t, "Q: colour of the sky?\nA:"), Continuation: tokens(t, c)})
		if math.Abs(res[i].Sum()-sum(want)) > 1e-3 {
			t.Errorf("choice %d: %.5f, direct %.5f", i, res[i].Sum(), sum(want))
		}
	}
	w, err := txt.Whole("hello world")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Context) != 1 || len(w.Context)+len(w.Continuation) != len(tokens(t, "hello world")) {
		t.Errorf("whole: %d + %d tokens", len(w.Context), len(w.Continuation))
	}
	if _, err := txt.Whole("h"); err == nil {
		t.Error("a one-token text has nothing to score, but was accepted")
	}
	if _, err := txt.Pair("x", strings.Repeat("ab ", 4*txt.Window())); !errors.Is(err, loglik.ErrTooLong) {
		t.Errorf("continuation of 4× the window: %v", err)
	}
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func TestChunkRequests(t *testing.T) {
	toks := make([]llama.Token, 21)
	for i := range toks {
		toks[i] = llama.Token(100 + i)
	}
	reqs := loglik.ChunkRequests(toks, 8, 1, true) // 2 chunks, 5 tokens dropped
	if len(reqs) != 2 {
		t.Fatalf("%d chunks, want 2", len(reqs))
	}
	for k, r := range reqs {
		if r.Context[0] != 1 || len(r.Context) != 5 || len(r.Continuation) != 3 {
			t.Errorf("chunk %d: context %v continuation %v", k, r.Context, r.Continuation)
		}
		if r.Continuation[0] != llama.Token(100+8*k+5) {
			t.Errorf("chunk %d scores from token %d", k, r.Continuation[0])
		}
	}
	if toks[0] != 100 {
		t.Error("ChunkRequests changed its input")
	}
	if n := loglik.ChunkRequests(toks, 8, 1, false)[1].Context[0]; n != 108 {
		t.Errorf("without BOS the chunk keeps its first token, got %d", n)
	}
}

func TestDistributionTop(t *testing.T) {
	logits := []float32{0.5, 3, -1, 3, 2, 0}
	d := loglik.NewDistribution(logits)
	top := d.Top(3)
	want := []int{1, 3, 4}
	total := 0.0
	for i := range logits {
		total += math.Exp(d.LogProb(i))
	}
	if math.Abs(total-1) > 1e-12 {
		t.Errorf("probabilities sum to %v", total)
	}
	for i, tp := range top {
		if tp.Token != want[i] || math.Abs(tp.LogProb-d.LogProb(tp.Token)) > 1e-12 {
			t.Errorf("top[%d] = %+v, want token %d", i, tp, want[i])
		}
	}
	if !sort.SliceIsSorted(top, func(i, j int) bool { return top[i].LogProb > top[j].LogProb }) {
		t.Errorf("top not sorted: %+v", top)
	}
	if len(d.Top(100)) != len(logits) || d.Top(0) != nil {
		t.Error("Top does not cap k")
	}
	if math.Abs(loglik.LogSoftmax(logits, 2)-d.LogProb(2)) > 1e-12 {
		t.Error("LogSoftmax and Distribution disagree")
	}
}
