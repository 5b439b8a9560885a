package evaluate

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/planner"
)

func TestLoadItems(t *testing.T) {
	tests := []struct {
		name      string
		src       Source
		wantN     int
		wantKinds []string // id prefixes that must occur
		wantErr   string
	}{
		{name: "all synthetic kinds", src: Source{Bench: "synth", Steps: []int{1, 2}, PerCell: 2}, wantN: 5 * 2 * 2,
			wantKinds: []string{"synth-arith-", "synth-list-", "synth-string-", "synth-order-", "synth-truth-"}},
		{name: "one kind", src: Source{Bench: "synth-arith", Steps: []int{3}, PerCell: 4}, wantN: 4, wantKinds: []string{"synth-arith-k3-"}},
		{name: "text is the string kind", src: Source{Bench: "SYNTH-TEXT", Steps: []int{1}, PerCell: 1}, wantN: 1, wantKinds: []string{"synth-string-k1-"}},
		{name: "defaults", src: Source{Bench: "synth-truth"}, wantN: len(DefaultSteps) * DefaultPerCell},
		// Order supports at most 8 steps: in the mix it is left out of k=12 only.
		{name: "mix skips unsupported steps per kind", src: Source{Bench: "synth", Steps: []int{8, 12}, PerCell: 1}, wantN: 5 + 4},
		{name: "step beyond every kind", src: Source{Bench: "synth", Steps: []int{99}, PerCell: 1}, wantErr: "supported by no synthetic kind"},
		{name: "step beyond the kind", src: Source{Bench: "synth-order", Steps: []int{9}, PerCell: 1}, wantErr: "synth-order"},
		{name: "negative n", src: Source{Bench: "synth", PerCell: -1}, wantErr: "must be positive"},
		{name: "file", src: Source{Bench: "testdata/gsm8k_tiny.jsonl"}, wantN: 4, wantKinds: []string{"gsm8k_tiny-"}},
		{name: "file with kind override", src: Source{Bench: "testdata/gsm8k_tiny.jsonl", File: benchdata.Options{Kind: answer.Exact}}, wantN: 4},
		{name: "unknown name", src: Source{Bench: "synth-arithm"}, wantErr: "built-in benchmarks are synth,"},
		{name: "missing file", src: Source{Bench: "testdata/nope.jsonl"}, wantErr: "testdata/nope.jsonl"},
		{name: "empty", src: Source{}, wantErr: "no benchmark given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loaded, err := LoadItems(tc.src)
			items := loaded.Items
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.wantN {
				t.Fatalf("%d items, want %d", len(items), tc.wantN)
			}
			for _, prefix := range tc.wantKinds {
				if !slices.ContainsFunc(items, func(it benchdata.Item) bool { return strings.HasPrefix(it.ID, prefix) }) {
					t.Errorf("no item id starts with %q", prefix)
				}
			}
			if tc.src.File.Kind != "" && items[0].Kind != tc.src.File.Kind {
				t.Errorf("kind %s, want the override %s", items[0].Kind, tc.src.File.Kind)
			}
		})
	}
	if _, err := LoadItems(Source{Bench: "nonsense"}); !errors.Is(err, ErrUnknownBench) {
		t.Errorf("unknown name: %v is not ErrUnknownBench", err)
	}
}

func TestLoadItemsFileFields(t *testing.T) {
	loaded, err := LoadItems(Source{Bench: "testdata/gsm8k_tiny.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	it := loaded.Items[3]
	if it.Kind != answer.Number || it.Gold != "1000" && it.Gold != "1,000" || it.Steps != 1 {
		t.Errorf("item %+v", it)
	}
	if _, ok, _ := Score(it, "So the total is $1,000.\nThe answer is 1000."); !ok {
		t.Errorf("a right answer to %q scored wrong (gold %q)", it.Question, it.Gold)
	}
}

func TestShuffleIsDeterministicPermutation(t *testing.T) {
	src := Source{Bench: "synth", Steps: []int{1, 2}, PerCell: 3, Seed: 7}
	load := func(src Source) []benchdata.Item {
		l, err := LoadItems(src)
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	plain := load(src)
	src.Shuffle = true
	a, b := load(src), load(src)
	ids := func(items []benchdata.Item) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.ID
		}
		return out
	}
	if !slices.Equal(ids(a), ids(b)) {
		t.Fatal("two shuffles with one seed differ")
	}
	if slices.Equal(ids(a), ids(plain)) {
		t.Fatal("shuffle kept the original order")
	}
	sa, sp := ids(a), ids(plain)
	slices.Sort(sa)
	slices.Sort(sp)
	if !slices.Equal(sa, sp) {
		t.Fatal("shuffle is not a permutation")
	}
	src.Seed = 8
	c := load(src)
	if slices.Equal(ids(a), ids(c)) {
		t.Error("another seed gave the same order")
	}
}

func TestDefaultOut(t *testing.T) {
	for in, want := range map[string]string{
		"synth":                  "eval-synth",
		"data/gsm8k.jsonl":       "eval-gsm8k",
		"/x/test.jsonl.gz":       "eval-test",
		"synth-arith":            "eval-synth-arith",
		"../bbh/boolean_ex.json": "eval-boolean_ex",
	} {
		if got := DefaultOut(in); got != want {
			t.Errorf("DefaultOut(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := DefaultOut("data/gsm8k.jsonl", "/m/llama3-8b.Q4_K_M.gguf", "", "out/codeplan-lora.gguf"), "eval-gsm8k-llama3-8b.Q4_K_M-codeplan-lora"; got != want {
		t.Errorf("with models: %q, want %q", got, want)
	}
}

// Every hint asks for the marker answer.Final reads first, and a reply
// that follows it is scored right.
func TestHintAnswersAreExtracted(t *testing.T) {
	tests := []struct {
		item  benchdata.Item
		reply string
	}{
		{benchdata.Item{Kind: answer.Number, Gold: "42"}, "6 * 7 = 42\nThe answer is 42"},
		{benchdata.Item{Kind: answer.Math, Gold: `\frac{1}{2}`}, `The answer is $\frac{1}{2}$`},
		{benchdata.Item{Kind: answer.Choice, Gold: "B", Choices: []string{"cat", "dog"}}, "The answer is (B)"},
		{benchdata.Item{Kind: answer.YesNo, Gold: "no"}, "Ann lies, so Ben tells the truth.\nThe answer is no"},
		{benchdata.Item{Kind: answer.Short, Gold: "Paris"}, "The answer is Paris"},
		{benchdata.Item{Kind: answer.Exact, Gold: "dderzip"}, "The answer is dderzip"},
	}
	for _, tc := range tests {
		if !strings.Contains(planner.Hint(tc.item.Kind), `"The answer is`) {
			t.Errorf("hint for %s does not ask for the marker: %q", tc.item.Kind, planner.Hint(tc.item.Kind))
		}
		if got, ok, _ := Score(tc.item, tc.reply); !ok {
			t.Errorf("%s: %q extracted as %q, scored wrong against %q", tc.item.Kind, tc.reply, got, tc.item.Gold)
		}
	}
	msg := planner.UserMessage("  What is 2+2?\n", answer.Number)
	if !strings.HasPrefix(msg, "What is 2+2?\n\nFinish") {
		t.Errorf("user message %q", msg)
	}
}

func TestLoadItemsSkipBad(t *testing.T) {
	p := t.TempDir() + "/mixed.jsonl"
	os.WriteFile(p, []byte(`{"question":"1+1?","answer":"#### 2"}`+"\n"+`{"question":"no answer"}`+"\n"+`{"question":"2+2?","answer":"#### 4"}`+"\n"), 0o644)
	if _, err := LoadItems(Source{Bench: p}); err == nil || !strings.Contains(err.Error(), "mixed.jsonl:2") {
		t.Fatalf("bad record: %v, want an error naming mixed.jsonl:2", err)
	}
	loaded, err := LoadItems(Source{Bench: p, File: benchdata.Options{SkipBad: true}})
	if err != nil || len(loaded.Items) != 2 || len(loaded.Skipped) != 1 {
		t.Fatalf("SkipBad: %+v, %v", loaded, err)
	}
}
