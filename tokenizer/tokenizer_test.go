package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSplit checks the pre-tokenizer against splits worked out by hand from
// Llama-3's regex, one per alternative and at the places where they meet.
func TestSplit(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Ann's boss is Bob.", []string{"Ann", "'s", " boss", " is", " Bob", "."}},
		{"I'LL do it", []string{"I", "'LL", " do", " it"}},
		{"x = 12345 + 6", []string{"x", " =", " ", "123", "45", " +", " ", "6"}},
		{"def f():\n    return x\n\n", []string{"def", " f", "():\n", "   ", " return", " x", "\n\n"}},
		{"a  \n  b", []string{"a", "  \n", " ", " b"}},
		{"end   ", []string{"end", "   "}},
		{"\"Ann\"\nx", []string{"\"Ann", "\"\n", "x"}},
		{"(x)", []string{"(x", ")"}},
		{"naïve café 日本", []string{"naïve", " café", " 日本"}},
		{"a\tb", []string{"a", "\tb"}},
		{"'hello'", []string{"'hello", "'"}},
		{" !!\n\nx", []string{" !!\n\n", "x"}},
	}
	for _, c := range cases {
		if got := Split(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// corpus is text shaped like the miniature's rows: facts, questions, code
// and numbered plans.
var corpus = []string{
	"Ann's boss is Bob. Bob's mentor is Cid. Who is the mentor of Ann's boss?",
	"def solve():\n    person = \"Ann\"\n    person = boss(person)\n    person = mentor(person)\n    return person\n\nprint(solve())",
	"1. Start from Ann.\n2. Find Ann's boss.\n3. Find that person's mentor.\n4. Give that person's name.",
	"Ann's boss is Bob.\nBob's mentor is Cid.\nThe answer is Cid.",
	"Eli has 42 pencils. He gives away a third of the pencils. 42 - 42 / 3 = 42 - 14 = 28.",
	"  trailing spaces   \n\t tabs\r\n and ÜNICODE 🙂 <|im_start|>user\nhi<|im_end|>\n",
}

func train(t *testing.T, vocab int, required []string) *Tokenizer {
	t.Helper()
	var texts []string
	for i := 0; i < 20; i++ {
		texts = append(texts, corpus...)
	}
	tk, err := Train(texts, Options{VocabSize: vocab, Required: required})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestTrain checks the vocabulary's size and layout, that the required
// pieces are single tokens, that encoding then decoding gives the text back
// exactly, and that training is deterministic.
func TestTrain(t *testing.T) {
	required := []string{" Yusuf", "Zoe", " physician", "99", "'s"}
	tk := train(t, 400, required)
	if tk.Len() != 400 || len(tk.Merges) != 400-MinVocab {
		t.Errorf("%d tokens, %d merges; want 400 and %d", tk.Len(), len(tk.Merges), 400-MinVocab)
	}
	for i, s := range Specials {
		if tk.Tokens[256+i] != s {
			t.Errorf("token %d is %q, want %q", 256+i, tk.Tokens[256+i], s)
		}
	}
	for _, r := range required {
		if ids := tk.Encode(r); len(ids) != 1 {
			t.Errorf("required %q is %d tokens %v", r, len(ids), ids)
		}
		// Reached by the merges too, not only as a whole-piece lookup.
		if toks := tk.bpe(strings.Join(spell(r), "")); len(toks) != 1 {
			t.Errorf("merges leave %q as %q", r, toks)
		}
	}
	// A frequent word is one token without being required.
	if ids := tk.Encode(" mentor"); len(ids) != 1 {
		t.Errorf("\" mentor\" is %d tokens", len(ids))
	}
	for _, text := range corpus {
		ids := tk.Encode(text)
		back, err := tk.Decode(ids)
		if err != nil || back != text {
			t.Errorf("round trip of %q gave %q (%v)", text, back, err)
		}
		if !strings.Contains(text, "<|") && len(ids) >= len(text) {
			t.Errorf("%q: %d tokens for %d bytes: nothing merged", text, len(ids), len(text))
		}
	}
	if ids := tk.Encode("<|im_start|>user"); ids[0] != 257 {
		t.Errorf("<|im_start|> encodes as %v, want the special token 257 first", ids)
	}
	again := train(t, 400, required)
	if !reflect.DeepEqual(tk.Merges, again.Merges) || !reflect.DeepEqual(tk.Tokens, again.Tokens) {
		t.Error("two trainings on the same texts differ")
	}
	if _, err := tk.Decode([]int{400}); err == nil {
		t.Error("decoding an id past the vocabulary: no error")
	}
}

func TestTrainErrors(t *testing.T) {
	if _, err := Train(corpus, Options{VocabSize: 100}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("vocabulary 100: %v", err)
	}
	if _, err := Train(corpus, Options{VocabSize: 300, Required: []string{"two words"}}); err == nil || !strings.Contains(err.Error(), "not one pre-token") {
		t.Errorf("a required text of two pieces: %v", err)
	}
	// 260 tokens leave one merge, too few for a four-letter word.
	if _, err := Train(corpus, Options{VocabSize: 260, Required: []string{"Yusuf"}}); err == nil || !strings.Contains(err.Error(), "more than a vocabulary") {
		t.Errorf("required words that cannot fit: %v", err)
	}
}

// nodeModules is where scripts/fetch-tokenizers.sh puts the JavaScript
// tokenizers ($CODEPLAN_TOKENIZERS or .cache/tokenizers at the repository
// root).
func nodeModules(t *testing.T) string {
	dir := os.Getenv("CODEPLAN_TOKENIZERS")
	if dir == "" {
		wd, _ := os.Getwd()
		dir = filepath.Join(filepath.Dir(wd), ".cache", "tokenizers")
	}
	nm := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "@lenml", "tokenizer-llama3")); err != nil {
		t.Skipf("no @lenml tokenizers in %s: run scripts/fetch-tokenizers.sh", dir)
	}
	return nm
}

// JSIDs encodes texts with the JavaScript tokenizers reading dir's
// tokenizer.json.
func JSIDs(t *testing.T, dir string, texts []string) [][]int {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	nm := nodeModules(t)
	in, _ := json.Marshal(texts)
	cmd := exec.Command(node, filepath.Join("testdata", "encode.js"), dir)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nm)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %.500s", err, stderr.String())
	}
	var ids [][]int
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatalf("node output %.200q: %v", out, err)
	}
	return ids
}

// TestSameIDsAsJavaScript: the tokenizer.json we write, read by an
// independent implementation (the @lenml/tokenizers port of Hugging Face's
// tokenizers), gives the same ids as our encoder.
func TestSameIDsAsJavaScript(t *testing.T) {
	tk := train(t, 420, []string{" Yusuf", "99"})
	dir := t.TempDir()
	if err := tk.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	texts := append([]string{"Hello  world! 12345 + 6.789 = ?? naïve café\n\tdef f(x):\n        return x**2   # sq\n\n\n   \nI'm sure it's 3,000 -- don't.   END\n"},
		corpus...)
	got := JSIDs(t, dir, texts)
	for i, text := range texts {
		if want := tk.Encode(text); !reflect.DeepEqual(got[i], want) {
			t.Errorf("%q:\n JS %v\n Go %v", text, got[i], want)
		}
	}
}
