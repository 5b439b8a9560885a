package benchdata

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/answer"
)

func load(t *testing.T, name string, opts Options) []Item {
	t.Helper()
	items, err := Load(filepath.Join("testdata", name), opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return items
}

// want is the part of an Item a test checks; empty fields are ignored
// except Gold, Kind and Steps, which are always compared.
type want struct {
	ID       string
	Gold     string
	Kind     answer.Kind
	Steps    int
	Choices  []string
	Aliases  []string
	Question string // substring the question must contain
}

func check(t *testing.T, name string, got []Item, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%s: %d items, want %d: %+v", name, len(got), len(wants), got)
	}
	for i, w := range wants {
		it := got[i]
		if w.ID != "" && it.ID != w.ID {
			t.Errorf("%s[%d].ID = %q, want %q", name, i, it.ID, w.ID)
		}
		if it.Gold != w.Gold || it.Kind != w.Kind || it.Steps != w.Steps {
			t.Errorf("%s[%d] = gold %q kind %q steps %d, want gold %q kind %q steps %d", name, i, it.Gold, it.Kind, it.Steps, w.Gold, w.Kind, w.Steps)
		}
		if w.Choices != nil && !reflect.DeepEqual(it.Choices, w.Choices) {
			t.Errorf("%s[%d].Choices = %q, want %q", name, i, it.Choices, w.Choices)
		}
		if w.Aliases != nil && !reflect.DeepEqual(it.Aliases, w.Aliases) {
			t.Errorf("%s[%d].Aliases = %q, want %q", name, i, it.Aliases, w.Aliases)
		}
		if !strings.Contains(it.Question, w.Question) {
			t.Errorf("%s[%d].Question = %q, want it to contain %q", name, i, it.Question, w.Question)
		}
	}
}

func TestLoadShapes(t *testing.T) {
	cases := []struct {
		file  string
		opts  Options
		wants []want
	}{
		{"gsm8k.jsonl", Options{}, []want{
			{ID: "gsm8k-1", Gold: "48", Kind: answer.Number, Steps: 2, Question: "Tomas picked 36 apples"},
			{ID: "gsm8k-2", Gold: "12000", Kind: answer.Number, Steps: 1},
			{ID: "gsm8k-3", Gold: "-6", Kind: answer.Number, Steps: 1},
		}},
		{"math.jsonl", Options{}, []want{
			{Gold: `\frac{3}{4}`, Kind: answer.Math},
			{Gold: `\{-1, 1\}`, Kind: answer.Math},
		}},
		{"math500.json", Options{}, []want{
			{ID: "test/prealgebra/1.json", Gold: "5", Kind: answer.Math},
			{ID: "test/precalculus/9001.json", Gold: `\left( 7, \frac{\pi}{2} \right)`, Kind: answer.Math},
		}},
		{"mc_letters.jsonl", Options{}, []want{
			{ID: "mc1", Gold: "B", Kind: answer.Choice, Choices: []string{"36", "42", "48", "54"}, Question: "What is 6 times 7?\n(A) 36 (B) 42 (C) 48 (D) 54"},
			{ID: "mc2", Gold: "C", Kind: answer.Choice},
		}},
		{"mmlu.jsonl", Options{}, []want{
			{Gold: "C", Kind: answer.Choice, Question: "(C) Paris (D) Rome"},
		}},
		{"arc_hf.jsonl", Options{}, []want{
			{ID: "Sci_0001", Gold: "C", Kind: answer.Choice},
			{ID: "Sci_0002", Gold: "D", Kind: answer.Choice, Question: "(D) a copper pan"},
		}},
		{"arc_original.jsonl", Options{QuestionField: "question.stem", ChoicesField: "question.choices", AnswerField: "answerKey"}, []want{
			{ID: "Q1", Gold: "B", Kind: answer.Choice, Choices: []string{"Oxygen", "Carbon dioxide", "Helium"}, Question: "Which gas do plants absorb?\n(A) Oxygen"},
		}},
		{"aqua.jsonl", Options{}, []want{
			{Gold: "E", Kind: answer.Choice, Choices: []string{"21", "21.5", "22", "22.5", "23"}, Question: "(B) 21.5 (C)"},
		}},
		{"dict_choices.jsonl", Options{}, []want{
			{Gold: "B", Kind: answer.Choice, Choices: []string{"shark", "whale", "trout"}},
		}},
		{"strategyqa.json", Options{}, []want{
			{ID: "sq-0001", Gold: "yes", Kind: answer.YesNo, Steps: 3},
			{ID: "sq-0002", Gold: "no", Kind: answer.YesNo, Steps: 2},
		}},
		{"hotpot.json", Options{}, []want{
			{ID: "hq-comparison-0001", Gold: "yes", Kind: answer.Short},
			{ID: "hq-bridge-0002", Gold: "1946", Kind: answer.Short},
		}},
		{"musique.jsonl", Options{}, []want{
			{ID: "3hop1__100001_200002_300003", Gold: "Edda Marlowe", Kind: answer.Short, Steps: 3, Aliases: []string{"Marlowe"}},
			{ID: "2hop__400004_500005", Gold: "3 March 1871", Kind: answer.Short, Steps: 2},
		}},
		{"bbh_boolean.json", Options{}, []want{
			{ID: "bbh_boolean-1", Gold: "False", Kind: answer.Exact},
			{ID: "bbh_boolean-2", Gold: "True", Kind: answer.Exact},
		}},
		{"custom.jsonl", Options{IDField: "meta.uid", QuestionField: "q", AnswerField: "a", StepsField: "meta.hops", Kind: answer.Number}, []want{
			{ID: "c-1", Gold: "4", Kind: answer.Number, Steps: 2, Question: "What is 2+2?"},
			{ID: "c-2", Gold: "9", Kind: answer.Number, Steps: 3},
		}},
		{"gsm8k.jsonl", Options{Limit: 2}, []want{
			{Gold: "48", Kind: answer.Number, Steps: 2},
			{Gold: "12000", Kind: answer.Number, Steps: 1},
		}},
		{"hotpot.json", Options{Kind: answer.Exact}, []want{
			{Gold: "yes", Kind: answer.Exact},
			{Gold: "1946", Kind: answer.Exact},
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			check(t, c.file, load(t, c.file, c.opts), c.wants)
		})
	}
}

func TestMetaAndSolution(t *testing.T) {
	items := load(t, "gsm8k.jsonl", Options{})
	if sol := items[0].Meta["solution"]; !strings.HasPrefix(sol, "Tomas picked 36/3") || strings.Contains(sol, "####") {
		t.Errorf("GSM8K solution = %q", sol)
	}
	m := load(t, "math.jsonl", Options{})
	if m[0].Meta["level"] != "Level 1" || m[0].Meta["type"] != "Prealgebra" || !strings.Contains(m[0].Meta["solution"], `\boxed`) {
		t.Errorf("MATH meta = %v", m[0].Meta)
	}
	if _, ok := m[0].Meta["problem"]; ok {
		t.Error("question field copied into Meta")
	}
	h := load(t, "hotpot.json", Options{})
	if h[0].Meta["type"] != "comparison" || h[0].Meta["level"] != "hard" {
		t.Errorf("HotpotQA meta = %v", h[0].Meta)
	}
	if _, ok := h[0].Meta["context"]; ok {
		t.Error("non-scalar context copied into Meta")
	}
	s := load(t, "strategyqa.json", Options{})
	if s[0].Meta["term"] != "Bicycle" {
		t.Errorf("StrategyQA meta = %v", s[0].Meta)
	}
}

func TestGoldsScoreWithAnswerPackage(t *testing.T) {
	items := load(t, "musique.jsonl", Options{})
	if got := items[0].Golds(); !reflect.DeepEqual(got, []string{"Edda Marlowe", "Marlowe"}) {
		t.Fatalf("Golds = %q", got)
	}
	if v := answer.ScoreAny(items[0].Kind, "Marlowe", items[0].Golds()); !v.Correct {
		t.Error("alias not accepted")
	}
	// Every loaded gold must score as correct against itself: bench and
	// answer agree on formats.
	for _, f := range []string{"gsm8k.jsonl", "math.jsonl", "math500.json", "mc_letters.jsonl", "arc_hf.jsonl", "strategyqa.json", "hotpot.json", "bbh_boolean.json"} {
		for _, it := range load(t, f, Options{}) {
			if v := answer.Score(it.Kind, it.Gold, it.Gold); !v.Correct {
				t.Errorf("%s %s: gold %q does not match itself", f, it.ID, it.Gold)
			}
		}
	}
}

func TestBadRecords(t *testing.T) {
	path := filepath.Join("testdata", "bad.jsonl")
	_, err := Load(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2: invalid JSON") {
		t.Fatalf("Load without SkipBad: err = %v, want bad.jsonl:2: invalid JSON", err)
	}
	l, err := LoadDetailed(path, Options{SkipBad: true})
	if err != nil {
		t.Fatalf("LoadDetailed SkipBad: %v", err)
	}
	var ids []string
	for _, it := range l.Items {
		ids = append(ids, it.ID)
	}
	if !reflect.DeepEqual(ids, []string{"g1", "g6"}) {
		t.Errorf("kept ids %v, want [g1 g6]", ids)
	}
	wantSkips := []string{
		"bad.jsonl:2: invalid JSON",
		`bad.jsonl:3: missing answer field "answer"`,
		`bad.jsonl:4: duplicate id "g1" (first at testdata/bad.jsonl:1)`,
		`bad.jsonl:5: question field "question" is empty`,
		`bad.jsonl:6: answer "#### fourteen-ish" holds no number`,
		"bad.jsonl:7: record is not a JSON object",
	}
	if len(l.Skipped) != len(wantSkips) {
		t.Fatalf("skipped %d: %v", len(l.Skipped), l.Skipped)
	}
	for i, w := range wantSkips {
		if !strings.Contains(l.Skipped[i].Error(), w) {
			t.Errorf("skip %d = %q, want it to contain %q", i, l.Skipped[i], w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		file string
		opts Options
		want string
	}{
		{"missing.jsonl", Options{}, "no such file"},
		{"empty.jsonl", Options{}, "empty.jsonl: no items"},
		{"truncated.json", Options{}, "truncated.json: invalid JSON array"},
		{"gsm8k.jsonl", Options{Kind: "numbr"}, `unknown answer kind "numbr"`},
		{"gsm8k.jsonl", Options{QuestionField: "nope"}, `gsm8k.jsonl:1: missing question field "nope"`},
		{"custom.jsonl", Options{}, "custom.jsonl:1: no question field"},
		{"hotpot.json", Options{Kind: answer.YesNo}, `hotpot.json:3: answer "1946" is not yes/no/true/false`},
		{"hotpot.json", Options{Kind: answer.YesNo, SkipBad: true}, ""},
	}
	for _, c := range cases {
		_, err := Load(filepath.Join("testdata", c.file), c.opts)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.file, err, c.want)
		}
	}
}

func TestChoiceAnswerForms(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		`{"id": "a", "question": "q", "choices": ["x", "y", "z"], "answer": 1}`,
		`{"id": "b", "question": "q", "choices": ["x", "y", "z"], "answer": "c"}`,
		`{"id": "c", "question": "q", "choices": ["x", "y", "z"], "answer": "z"}`,
		`{"id": "d", "question": "q", "choices": ["x", "y", "z"], "answer": 3}`,
		`{"id": "e", "question": "q", "choices": ["x", "y", "z"], "answer": "2"}`,
		`{"id": "f", "question": "q", "choices": ["x", "y", "z"], "answer": "D"}`,
		`{"id": "g", "question": "q", "choices": ["x"], "answer": "A"}`,
		`{"id": "h", "question": "q", "choices": ["x", ""], "answer": "A"}`,
		`{"id": "i", "question": "q", "choices": "x, y", "answer": "A"}`,
	}
	path := filepath.Join(dir, "mc.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := LoadDetailed(path, Options{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	var golds []string
	for _, it := range l.Items {
		golds = append(golds, it.ID+"="+it.Gold)
	}
	if !reflect.DeepEqual(golds, []string{"a=B", "b=C", "c=C"}) {
		t.Errorf("golds %v", golds)
	}
	wantSkips := []string{
		"mc.jsonl:4: answer index 3 is not in 0..2",
		`mc.jsonl:5: answer "2" is neither a label, letter, index nor option text`,
		`mc.jsonl:6: answer "D" is beyond the 3 options`,
		"mc.jsonl:7: choices field \"choices\" has 1 options, want at least 2",
		"mc.jsonl:8: choices field \"choices\": option 2 is empty",
		"mc.jsonl:9: choices field \"choices\" is missing or not a list or object",
	}
	if len(l.Skipped) != len(wantSkips) {
		t.Fatalf("skipped %v", l.Skipped)
	}
	for i, w := range wantSkips {
		if !strings.Contains(l.Skipped[i].Error(), w) {
			t.Errorf("skip %d = %q, want %q", i, l.Skipped[i], w)
		}
	}
}

func TestAllBadIsError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	if err := os.WriteFile(path, []byte("nonsense\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, Options{SkipBad: true})
	if err == nil || !strings.Contains(err.Error(), "no valid items (2 skipped") {
		t.Errorf("err = %v", err)
	}
}

// TestLoadGzip: a gzip-compressed benchmark loads like the plain file (it
// once failed as "invalid JSON"), and a truncated one says so.
func TestLoadGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for i := range 50 {
		fmt.Fprintf(zw, `{"question":"What is %d + 1?","answer":"#### %d"}`+"\n", i, i+1)
	}
	zw.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "b.jsonl.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	items, err := Load(p, Options{})
	if err != nil || len(items) != 50 {
		t.Fatalf("gzip benchmark: %d items, %v", len(items), err)
	}
	cut := filepath.Join(dir, "cut.jsonl.gz")
	if err := os.WriteFile(cut, buf.Bytes()[:buf.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cut, Options{}); err == nil || !strings.Contains(err.Error(), "ends early") {
		t.Errorf("truncated gzip: err = %v", err)
	}
}
