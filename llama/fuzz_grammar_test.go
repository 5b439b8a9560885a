package llama_test

import (
	"testing"

	"github.com/codeplan-dev/codeplan/llama"
)

// FuzzGrammar feeds arbitrary GBNF text to the grammar sampler and samples
// a few tokens with it: a parse error must be a Go error (ErrGrammar), and a
// grammar that parses must sample or fail in Go, never abort.
func FuzzGrammar(f *testing.F) {
	m, err := llama.LoadModel(tinyPath, llama.ModelOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ctx, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx.Close()
		if err := m.Close(); err != nil {
			f.Error(err) // a sampler of some input was not closed
		}
	})
	for _, g := range []string{`root ::= "yes" | "no"`, `root ::= [0-9]+ ("." [0-9]+)?`, `root ::= item{2,3}
item ::= "a" | "b"`, `root ::= ("unclosed`, `root ::= x
x ::= x`} {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, grammar string) {
		s, err := llama.NewSampler(m, llama.SamplerOptions{Grammar: grammar})
		if err != nil {
			return
		}
		defer s.Close()
		ctx.ClearKV()
		b, _ := llama.NewBatch(4, 1)
		defer b.Close()
		for i := 0; i < 3; i++ {
			b.Clear()
			b.Add(65, llama.Pos(i), 0, true)
			if ctx.Decode(b) != nil {
				return
			}
			if _, err := s.Sample(ctx, 0); err != nil {
				return
			}
		}
	})
}
