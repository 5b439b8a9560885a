package benchdata

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/tidwall/gjson"
)

// Load reads a benchmark file (see the package doc for the shapes it
// understands). It is LoadDetailed without the list of skipped records.
func Load(path string, opts Options) ([]Item, error) {
	l, err := LoadDetailed(path, opts)
	return l.Items, err
}

// record is one raw JSON record and where it came from ("file:line").
type record struct {
	loc   string
	value gjson.Result
	err   error // set when the record is not valid JSON
}

// gunzipIfCompressed decompresses gzip data (recognised by its magic bytes,
// as dataset does for corpora), so that .jsonl.gz benchmarks load instead of
// failing as "invalid JSON".
func gunzipIfCompressed(path string, data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxBenchBytes+1))
	if err == nil && len(out) > maxBenchBytes {
		return nil, dataset.BadInputf("%s: more than %d MiB once decompressed; not a benchmark file", path, maxBenchBytes>>20)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%s: the gzip data ends early (a truncated file or download?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	}
	return out, nil
}

// maxBenchBytes bounds a benchmark file read into memory (a FIFO fed from
// /dev/zero would otherwise grow it without end); real ones are megabytes.
const maxBenchBytes = 1 << 30

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBenchBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBenchBytes {
		return nil, dataset.BadInputf("%s: more than %d MiB; not a benchmark file", path, maxBenchBytes>>20)
	}
	return data, nil
}

// LoadDetailed reads a benchmark file like Load and also returns the
// records skipped under Options.SkipBad. A file with no valid item is an
// error, since evaluating nothing is never what the caller wants.
func LoadDetailed(path string, opts Options) (Loaded, error) {
	if opts.Kind != "" {
		if _, err := answer.ParseKind(string(opts.Kind)); err != nil {
			return Loaded{}, err
		}
	}
	// A device (/dev/zero) would be read without end.
	if err := dataset.CheckInputFile(path); err != nil {
		return Loaded{}, err
	}
	data, err := readBounded(path)
	if err != nil {
		return Loaded{}, err
	}
	if data, err = gunzipIfCompressed(path, data); err != nil {
		return Loaded{}, err
	}
	records, err := splitRecords(path, data)
	if err != nil {
		return Loaded{}, err
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var out Loaded
	var sch *schema
	seen := make(map[string]string)
	for n, rec := range records {
		if opts.Limit > 0 && len(out.Items) >= opts.Limit {
			break
		}
		item, err := func() (Item, error) {
			if rec.err != nil {
				return Item{}, rec.err
			}
			if sch == nil {
				s, err := detect(rec.value, opts)
				if err != nil {
					return Item{}, err
				}
				sch = &s
			}
			return sch.item(rec.value, fmt.Sprintf("%s-%d", base, n+1))
		}()
		if err == nil {
			if first, dup := seen[item.ID]; dup {
				err = fmt.Errorf("duplicate id %q (first at %s)", item.ID, first)
			}
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", rec.loc, err)
			if !opts.SkipBad {
				return Loaded{}, err
			}
			out.Skipped = append(out.Skipped, err)
			continue
		}
		seen[item.ID] = rec.loc
		out.Items = append(out.Items, item)
	}
	if len(out.Items) == 0 {
		if len(out.Skipped) > 0 {
			return out, fmt.Errorf("%s: no valid items (%d skipped, first: %w)", path, len(out.Skipped), out.Skipped[0])
		}
		return out, fmt.Errorf("%s: no items", path)
	}
	return out, nil
}

// containerKeys are the fields under which a .json object keeps its list
// of examples (BBH task files use "examples").
var containerKeys = []string{"examples", "data", "items", "questions"}

// splitRecords cuts a file into JSON records. A file that as a whole is a
// JSON array (or an object holding one under a container key) gives its
// elements; anything else is read as JSON Lines, one record per non-blank
// line.
func splitRecords(path string, data []byte) ([]record, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(data)
	ext := strings.ToLower(filepath.Ext(path))
	if len(trimmed) > 0 && ext != ".jsonl" && ext != ".ndjson" && gjson.ValidBytes(trimmed) {
		whole := gjson.ParseBytes(data)
		if whole.IsArray() {
			return arrayRecords(path, string(data), whole), nil
		}
		if whole.IsObject() {
			for _, k := range containerKeys {
				if v := whole.Get(k); v.IsArray() {
					return arrayRecords(path, string(data), v), nil
				}
			}
		}
	}
	if ext == ".json" && len(trimmed) > 0 && trimmed[0] == '[' {
		return nil, fmt.Errorf("%s: invalid JSON array", path)
	}
	var out []record
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		loc := fmt.Sprintf("%s:%d", path, i+1)
		if !gjson.Valid(line) {
			out = append(out, record{loc: loc, err: errors.New("invalid JSON")})
			continue
		}
		out = append(out, record{loc: loc, value: gjson.Parse(line)})
	}
	return out, nil
}

// arrayRecords turns the elements of a JSON array into records, locating
// each by the line it starts on when gjson knows its offset.
func arrayRecords(path, doc string, arr gjson.Result) []record {
	var out []record
	n := 0
	arr.ForEach(func(_, v gjson.Result) bool {
		n++
		loc := fmt.Sprintf("%s: record %d", path, n)
		if v.Index > 0 && v.Index <= len(doc) {
			loc = fmt.Sprintf("%s:%d", path, strings.Count(doc[:v.Index], "\n")+1)
		}
		out = append(out, record{loc: loc, value: v})
		return true
	})
	return out
}

// schema is the field layout and kind detected from a file's first
// record and applied to all of its records.
type schema struct {
	kind                          answer.Kind
	id, question, answer, choices string
	steps                         string
	answerIsSolution              bool
	// kindField names a per-record answer kind (the rows of `codeplan
	// synth` mix families scored differently); empty when the kind is
	// forced or detected once for the file.
	kindField string
}

// kindFieldName is the record field that gives an item's own answer kind.
const kindFieldName = "answer_kind"

var (
	questionFields = []string{"question", "problem", "input", "Question", "query", "prompt"}
	answerFields   = []string{"answer", "answerKey", "target", "correct", "label", "gold", "Answer", "solution"}
	choiceFields   = []string{"choices", "options"}
	idFields       = []string{"id", "_id", "qid", "idx", "unique_id", "question_id", "ID"}
	stepFields     = []string{"steps", "num_steps", "hops", "num_hops", "n_hops"}
	// qaSignals are fields only multi-hop QA sets (HotpotQA, MuSiQue,
	// 2Wiki) carry; they keep a numeric-looking answer such as "1998" a
	// short text answer.
	qaSignals = []string{"answer_aliases", "supporting_facts", "context", "paragraphs", "question_decomposition", "answerable", "type", "level"}
)

func firstPresent(rec gjson.Result, names []string) string {
	for _, n := range names {
		if rec.Get(gjson.Escape(n)).Exists() {
			return n
		}
	}
	return ""
}

// detect works out the schema from the first record, honouring overrides.
func detect(rec gjson.Result, opts Options) (schema, error) {
	if !rec.IsObject() {
		return schema{}, errors.New("record is not a JSON object")
	}
	s := schema{
		question: opts.QuestionField,
		answer:   opts.AnswerField,
		choices:  opts.ChoicesField,
		id:       opts.IDField,
		steps:    opts.StepsField,
	}
	if s.question == "" {
		s.question = firstPresent(rec, questionFields)
		if s.question == "" {
			return schema{}, fmt.Errorf("no question field (looked for %s); name it with the question-field option", strings.Join(questionFields, ", "))
		}
	}
	if s.answer == "" {
		if s.question == "problem" && !rec.Get("answer").Exists() && rec.Get("solution").Exists() {
			s.answer = "solution"
		} else {
			s.answer = firstPresent(rec, answerFields)
		}
		if s.answer == "" {
			return schema{}, fmt.Errorf("no answer field (looked for %s); name it with the answer-field option", strings.Join(answerFields, ", "))
		}
	}
	s.answerIsSolution = s.answer == "solution"
	if s.choices == "" {
		s.choices = firstPresent(rec, choiceFields)
	}
	if s.id == "" {
		s.id = firstPresent(rec, idFields)
	}
	if s.steps == "" {
		for _, f := range stepFields {
			if rec.Get(f).Type == gjson.Number {
				s.steps = f
				break
			}
		}
	}
	s.kind = opts.Kind
	if s.kind == "" && rec.Get(kindFieldName).Type == gjson.String {
		s.kindField = kindFieldName
	}
	if s.kind == "" {
		s.kind = detectKind(rec, s)
	}
	return s, nil
}

func detectKind(rec gjson.Result, s schema) answer.Kind {
	a := rec.Get(s.answer)
	switch {
	case s.choices != "":
		return answer.Choice
	case s.question == "input" && s.answer == "target":
		return answer.Exact
	case s.question == "problem" || s.answerIsSolution:
		return answer.Math
	case a.IsBool():
		return answer.YesNo
	case a.Type == gjson.String && strings.Contains(a.Str, "####"):
		return answer.Number
	case a.Type == gjson.Number:
		return answer.Number
	case firstPresent(rec, qaSignals) != "":
		return answer.Short
	case a.Type == gjson.String && plainNumberRe.MatchString(strings.TrimSpace(a.Str)):
		return answer.Number
	}
	return answer.Short
}

var (
	plainNumberRe = regexp.MustCompile(`^-?\$?\d[\d,]*(?:\.\d+)?$`)
	musiqueHopsRe = regexp.MustCompile(`^(\d+)hop`)
	// optionPrefixRe matches an option text that carries its own label,
	// as AQuA's "A)21" does.
	optionPrefixRe = regexp.MustCompile(`^\(?([A-Z])\)\s*`)
)

// item builds the Item for one record. fallbackID is used when the
// record has no id field.
func (s schema) item(rec gjson.Result, fallbackID string) (Item, error) {
	if !rec.IsObject() {
		return Item{}, errors.New("record is not a JSON object")
	}
	if s.kindField != "" {
		k, err := answer.ParseKind(rec.Get(s.kindField).String())
		if err != nil {
			return Item{}, fmt.Errorf("field %q: %w", s.kindField, err)
		}
		s.kind = k // s is this record's copy of the schema
	}
	it := Item{Kind: s.kind, ID: fallbackID}
	if s.id != "" {
		if v := rec.Get(s.id); v.Exists() && strings.TrimSpace(v.String()) != "" {
			it.ID = strings.TrimSpace(v.String())
		}
	}
	q := rec.Get(s.question)
	if !q.Exists() {
		return Item{}, fmt.Errorf("missing question field %q", s.question)
	}
	if q.Type != gjson.String || strings.TrimSpace(q.Str) == "" {
		return Item{}, fmt.Errorf("question field %q is empty or not a string", s.question)
	}
	it.Question = strings.TrimSpace(q.Str)
	a := rec.Get(s.answer)
	if !a.Exists() || a.Type == gjson.Null {
		return Item{}, fmt.Errorf("missing answer field %q", s.answer)
	}
	if s.choices != "" {
		texts, labels, err := parseChoices(rec.Get(s.choices), s.choices)
		if err != nil {
			return Item{}, err
		}
		it.Choices = texts
		if s.kind == answer.Choice {
			idx, err := choiceIndex(a, texts, labels)
			if err != nil {
				return Item{}, err
			}
			it.Gold = string(rune('A' + idx))
		}
		it.Question = renderChoices(it.Question, texts)
	}
	var solution string
	if it.Gold == "" {
		var err error
		it.Gold, it.Aliases, solution, err = s.gold(rec, a)
		if err != nil {
			return Item{}, err
		}
	}
	it.Steps = s.stepsOf(rec, it.ID, solution)
	it.Meta = s.meta(rec)
	if solution != "" {
		if it.Meta == nil {
			it.Meta = map[string]string{}
		}
		it.Meta["solution"] = solution
	}
	return it, nil
}

// gold reads the gold answer of a non-choice record, with aliases and
// the reference solution where the data set has them.
func (s schema) gold(rec, a gjson.Result) (gold string, aliases []string, solution string, err error) {
	switch s.kind {
	case answer.Number:
		text := a.String()
		if a.Type == gjson.String {
			if i := strings.LastIndex(text, "####"); i >= 0 {
				solution = strings.TrimSpace(text[:i])
				text = text[i+4:]
			}
		}
		g, ok := answer.Final(answer.Number, text)
		if !ok || !plainNumberLike(g) {
			return "", nil, "", fmt.Errorf("answer %q holds no number", clip(a.String()))
		}
		return g, nil, solution, nil
	case answer.Math:
		text := strings.TrimSpace(a.String())
		if s.answerIsSolution || strings.Contains(text, `\boxed`) || strings.Contains(text, `\fbox`) {
			g, ok := boxed(text)
			if !ok {
				return "", nil, "", fmt.Errorf("solution has no \\boxed{} answer: %q", clip(text))
			}
			if s.answerIsSolution {
				solution = text
			}
			return g, nil, solution, nil
		}
		if text == "" {
			return "", nil, "", fmt.Errorf("answer field %q is empty", s.answer)
		}
		if sol := rec.Get("solution"); sol.Type == gjson.String {
			solution = sol.Str
		}
		return text, nil, solution, nil
	case answer.YesNo:
		if a.IsBool() {
			if a.Bool() {
				return "yes", nil, "", nil
			}
			return "no", nil, "", nil
		}
		switch strings.ToLower(strings.TrimSpace(a.String())) {
		case "yes", "true":
			return "yes", nil, "", nil
		case "no", "false":
			return "no", nil, "", nil
		}
		return "", nil, "", fmt.Errorf("answer %q is not yes/no/true/false", clip(a.String()))
	case answer.Choice:
		g := strings.TrimSpace(a.String())
		if g == "" {
			return "", nil, "", fmt.Errorf("answer field %q is empty", s.answer)
		}
		return g, nil, "", nil
	}
	// Short and Exact.
	if a.IsArray() {
		for _, v := range a.Array() {
			if t := strings.TrimSpace(v.String()); t != "" {
				if gold == "" {
					gold = t
				} else {
					aliases = append(aliases, t)
				}
			}
		}
	} else {
		gold = strings.TrimSpace(a.String())
	}
	if gold == "" {
		return "", nil, "", fmt.Errorf("answer field %q is empty", s.answer)
	}
	if s.kind == answer.Short {
		for _, f := range []string{"answer_aliases", "aliases"} {
			for _, v := range rec.Get(f).Array() {
				if t := strings.TrimSpace(v.String()); t != "" && t != gold {
					aliases = append(aliases, t)
				}
			}
		}
	}
	return gold, aliases, "", nil
}

// plainNumberLike rejects Extract results that are not numbers (a boxed
// expression is returned verbatim by Extract).
func plainNumberLike(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	if err == nil {
		return true
	}
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	_, e1 := strconv.ParseInt(num, 10, 64)
	_, e2 := strconv.ParseInt(den, 10, 64)
	return e1 == nil && e2 == nil
}

// boxed returns the content of the last balanced \boxed{} in a solution,
// going through answer.Final so that bench and scoring agree.
func boxed(solution string) (string, bool) {
	if !strings.Contains(solution, `\boxed`) && !strings.Contains(solution, `\fbox`) {
		return "", false
	}
	g, ok := answer.Final(answer.Math, solution)
	return g, ok && g != ""
}

// parseChoices reads option texts (and ARC-style labels, when given) from
// a list of strings, a list of {"label","text"} objects, an ARC object
// {"label": [...], "text": [...]}, or an object keyed by letter.
func parseChoices(v gjson.Result, field string) (texts, labels []string, err error) {
	switch {
	case v.IsArray():
		for _, c := range v.Array() {
			if c.IsObject() {
				texts = append(texts, strings.TrimSpace(c.Get("text").String()))
				labels = append(labels, strings.TrimSpace(c.Get("label").String()))
				continue
			}
			texts = append(texts, strings.TrimSpace(c.String()))
		}
	case v.IsObject() && v.Get("text").IsArray():
		for _, t := range v.Get("text").Array() {
			texts = append(texts, strings.TrimSpace(t.String()))
		}
		for _, l := range v.Get("label").Array() {
			labels = append(labels, strings.TrimSpace(l.String()))
		}
		if len(labels) != 0 && len(labels) != len(texts) {
			return nil, nil, fmt.Errorf("choices field %q has %d labels for %d texts", field, len(labels), len(texts))
		}
	case v.IsObject():
		m := v.Map()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			labels = append(labels, k)
			texts = append(texts, strings.TrimSpace(m[k].String()))
		}
	default:
		return nil, nil, fmt.Errorf("choices field %q is missing or not a list or object", field)
	}
	if len(texts) < 2 {
		return nil, nil, fmt.Errorf("choices field %q has %d options, want at least 2", field, len(texts))
	}
	if len(texts) > 26 {
		return nil, nil, fmt.Errorf("choices field %q has %d options, more than letters A-Z", field, len(texts))
	}
	// AQuA-style "A)21": strip the label when every option carries the
	// expected one, so it is not rendered twice.
	selfLabelled := true
	for i, t := range texts {
		m := optionPrefixRe.FindStringSubmatch(t)
		if m == nil || m[1] != string(rune('A'+i)) {
			selfLabelled = false
			break
		}
	}
	if selfLabelled {
		for i, t := range texts {
			texts[i] = strings.TrimSpace(optionPrefixRe.ReplaceAllString(t, ""))
		}
	}
	for i, t := range texts {
		if t == "" {
			return nil, nil, fmt.Errorf("choices field %q: option %d is empty", field, i+1)
		}
	}
	return texts, labels, nil
}

// choiceIndex maps a multiple-choice answer to a 0-based option index. It
// accepts, in order: one of the record's own labels, a JSON integer
// (0-based, as in MMLU), a letter with optional parentheses naming an
// existing option, or the exact text of one option. Digit strings without labels are refused, because
// they could be 0- or 1-based.
func choiceIndex(a gjson.Result, texts, labels []string) (int, error) {
	s := strings.TrimSpace(a.String())
	for i, l := range labels {
		if l != "" && l == s {
			return i, nil
		}
	}
	if a.Type == gjson.Number {
		n := a.Int()
		if float64(n) != a.Num || n < 0 || int(n) >= len(texts) {
			return 0, fmt.Errorf("answer index %s is not in 0..%d", a.Raw, len(texts)-1)
		}
		return int(n), nil
	}
	letter := strings.ToUpper(strings.Trim(s, "() ."))
	isLetter := len(letter) == 1 && letter[0] >= 'A' && letter[0] <= 'Z'
	if isLetter && int(letter[0]-'A') < len(texts) {
		return int(letter[0] - 'A'), nil
	}
	for i, t := range texts {
		if t == s {
			return i, nil
		}
	}
	if isLetter {
		return 0, fmt.Errorf("answer %q is beyond the %d options", s, len(texts))
	}
	return 0, fmt.Errorf("answer %q is neither a label, letter, index nor option text", clip(s))
}

// renderChoices appends the options to the question as "(A) x (B) y".
func renderChoices(question string, texts []string) string {
	parts := make([]string, len(texts))
	for i, t := range texts {
		parts[i] = fmt.Sprintf("(%c) %s", 'A'+i, t)
	}
	return question + "\n" + strings.Join(parts, " ")
}

// stepsOf finds the number of reasoning steps: an explicit steps field,
// a MuSiQue id ("3hop1__..." is 3), a StrategyQA "decomposition" or
// MuSiQue "question_decomposition" list, or the number of non-empty lines
// of a GSM8K solution. 0 means unknown.
func (s schema) stepsOf(rec gjson.Result, id, solution string) int {
	if s.steps != "" {
		if v := rec.Get(s.steps); v.Type == gjson.Number && v.Int() > 0 {
			return int(v.Int())
		}
		return 0
	}
	if m := musiqueHopsRe.FindStringSubmatch(id); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return n
		}
	}
	for _, f := range []string{"decomposition", "question_decomposition"} {
		if v := rec.Get(f); v.IsArray() && len(v.Array()) > 0 {
			return len(v.Array())
		}
	}
	if s.kind == answer.Number && solution != "" {
		n := 0
		for _, line := range strings.Split(solution, "\n") {
			if strings.TrimSpace(line) != "" {
				n++
			}
		}
		return n
	}
	return 0
}

// meta keeps the record's top-level scalar fields that are not already
// the question, answer, choices or id.
func (s schema) meta(rec gjson.Result) map[string]string {
	used := map[string]bool{}
	for _, p := range []string{s.question, s.answer, s.choices, s.id} {
		if p != "" {
			used[strings.SplitN(p, ".", 2)[0]] = true
		}
	}
	var m map[string]string
	rec.ForEach(func(k, v gjson.Result) bool {
		if used[k.Str] {
			return true
		}
		switch v.Type {
		case gjson.String, gjson.Number, gjson.True, gjson.False:
			if m == nil {
				m = map[string]string{}
			}
			m[k.Str] = v.String()
		}
		return true
	})
	return m
}

// clip shortens long values quoted in error messages.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
