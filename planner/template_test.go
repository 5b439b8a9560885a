package planner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hashes pin the built-in templates. If this test fails, an instruction
// changed: that changes every plan generated from now on, so update the pin
// only on purpose.
const (
	paperTemplateHash      = "b8863363f294"
	structuredTemplateHash = "aeac4d2c2cb7" // the default before the paper's text was known
)

func TestBuiltinTemplatesParse(t *testing.T) {
	for _, name := range TemplateNames() {
		b, ok := NamedTemplate(name)
		if !ok {
			t.Fatalf("NamedTemplate(%q) not found", name)
		}
		parsed, err := ParseTemplate(name, b.Text())
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Text() != b.Text() || parsed.Hash() != b.Hash() || b.Source() != name {
			t.Errorf("%s: built-in template differs from ParseTemplate of its text", name)
		}
	}
	d := DefaultTemplate()
	if d.Text() != PaperExtractionTemplate || d.Source() != "paper" {
		t.Errorf("the default template is not the paper's (source %q)", d.Source())
	}
	if _, ok := NamedTemplate("Paper"); ok {
		t.Error("template names are case-sensitive (a file named Paper must stay reachable)")
	}
}

func TestTemplateHashesPinned(t *testing.T) {
	if got := DefaultTemplate().Hash(); got != paperTemplateHash {
		t.Errorf("default (paper) template hash = %s, want %s", got, paperTemplateHash)
	}
	if s, _ := NamedTemplate("structured"); s.Hash() != structuredTemplateHash {
		t.Errorf("structured template hash = %s, want %s", s.Hash(), structuredTemplateHash)
	}
}

// TestPaperTemplateVerbatim compares the default with a copy of the paper's
// text (testdata/paper_template.txt, from the project's notes on the paper),
// line breaks included.
func TestPaperTemplateVerbatim(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "paper_template.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimRight(string(b), "\n")
	if PaperExtractionTemplate != want {
		t.Errorf("PaperExtractionTemplate differs from the paper's text:\n got %q\nwant %q", PaperExtractionTemplate, want)
	}
	if n := strings.Count(PaperExtractionTemplate, "\n"); n != 3 {
		t.Errorf("paper's template has %d line breaks, want 3", n)
	}
	out, err := DefaultTemplate().Render("What is 2+3?", "2+3 = 5.")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Prompt: What is 2+3?\nResponse: 2+3 = 5.\nGiven a prompt-response pair,") ||
		!strings.HasSuffix(out, "(adjust its length based on response lengths).") || strings.Contains(out, "{{") {
		t.Errorf("paper's template rendered badly:\n%s", out)
	}
}

func TestPlaceholdersCaseInsensitive(t *testing.T) {
	tpl, err := ParseTemplate("t", "A {{Prompt}} B {{ RESPONSE }} C {{prompt}}")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tpl.Render("p", "r"); got != "A p B r C p" {
		t.Errorf("got %q", got)
	}
	if _, err := ParseTemplate("t", "{{Prompt}} {{Respons}}"); err == nil || !strings.Contains(err.Error(), "{{Respons}}") {
		t.Errorf("misspelt placeholder: err = %v", err)
	}
}

func TestTemplateFromFlag(t *testing.T) {
	d, err := TemplateFromFlag("")
	if err != nil || d.Hash() != paperTemplateHash {
		t.Fatalf("empty flag: %v, %v", d, err)
	}
	s, err := TemplateFromFlag("structured")
	if err != nil || s.Hash() != structuredTemplateHash || s.Source() != "structured" {
		t.Fatalf("structured: %v, %v", s, err)
	}
	path := filepath.Join(t.TempDir(), "mine.txt")
	if err := os.WriteFile(path, []byte("Q {{prompt}}\nR {{response}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := TemplateFromFlag(path)
	if err != nil || f.Source() != path || f.Text() != "Q {{prompt}}\nR {{response}}" {
		t.Fatalf("file: %v, %v", f, err)
	}
	if _, err := TemplateFromFlag(filepath.Join(t.TempDir(), "structured-typo")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestTemplateHash(t *testing.T) {
	a, _ := ParseTemplate("a", "P {{prompt}} R {{response}}")
	b, _ := ParseTemplate("b", "P {{prompt}} R {{response}}\r\n\n")
	c, _ := ParseTemplate("c", "P {{prompt}}  R {{response}}")
	if len(a.Hash()) != 12 || strings.Trim(a.Hash(), "0123456789abcdef") != "" {
		t.Errorf("hash %q is not 12 hex digits", a.Hash())
	}
	if a.Hash() != b.Hash() {
		t.Error("trailing whitespace changed the hash")
	}
	if a.Hash() == c.Hash() {
		t.Error("different texts have the same hash")
	}
	if a.Hash() != a.Hash() {
		t.Error("hash is not stable")
	}
}

func TestRender(t *testing.T) {
	tpl, err := ParseTemplate("t", "Q: {{ prompt }}\nA: {{response}}\nQ again: {{prompt}}")
	if err != nil {
		t.Fatal(err)
	}
	// Placeholders inside the inputs must survive: substitution is one pass.
	got, err := tpl.Render("What is {{response}}?", "It is {{prompt}} and {x}.")
	if err != nil {
		t.Fatal(err)
	}
	want := "Q: What is {{response}}?\nA: It is {{prompt}} and {x}.\nQ again: What is {{response}}?"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	structured, _ := NamedTemplate("structured")
	out, err := structured.Render("PROMPT-TEXT", "RESPONSE-TEXT")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Question:\nPROMPT-TEXT\n\nResponse:\nRESPONSE-TEXT") || strings.Contains(out, "{{") {
		t.Errorf("structured template rendered badly:\n%s", out)
	}
	// Literal braces that are not placeholders stay as they are.
	lit, err := ParseTemplate("lit", "d = {'a': 1}; {{prompt}} {{response}} {{ }} {not}")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := lit.Render("p", "r"); s != "d = {'a': 1}; p r {{ }} {not}" {
		t.Errorf("literal braces: got %q", s)
	}
}

func TestRenderUnknownPlaceholder(t *testing.T) {
	// A Template not made by ParseTemplate can hold anything; Render must still refuse.
	bad := &Template{source: "hand-made", text: "{{prompt}} {{response}} {{answer}}"}
	if _, err := bad.Render("p", "r"); err == nil || !strings.Contains(err.Error(), "{{answer}}") {
		t.Errorf("error = %v, want unknown placeholder {{answer}}", err)
	}
	var zero *Template
	if _, err := zero.Render("p", "r"); err == nil {
		t.Error("nil template: no error")
	}
	if _, err := (&Template{}).Render("p", "r"); err == nil {
		t.Error("empty template: no error")
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"", "is empty"},
		{" \n\t", "is empty"},
		{"Plan for {{prompt}}", "missing placeholder {{response}}"},
		{"{{response}} only", "missing placeholder {{prompt}}"},
		{"{{prompt}}\n{{response}}\n{{ Prompts }}", "src:3: unknown placeholder {{ Prompts }}"},
		{"{{.Prompt}} {{.Response}}", "src:1: unknown placeholder {{.Prompt}}"},
	}
	for _, tc := range tests {
		_, err := ParseTemplate("src", tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTemplate(%q) error = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestLoadTemplate(t *testing.T) {
	tpl, err := LoadTemplate(filepath.Join("testdata", "template_custom.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Source() != filepath.Join("testdata", "template_custom.txt") {
		t.Errorf("source = %q", tpl.Source())
	}
	got, err := tpl.Render("2+2?", "4")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Turn the answer below into Python pseudocode that shows its steps.\n\nQ: 2+2?\nA: 4"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// The same template saved with CRLF line endings has the same hash.
	raw, err := os.ReadFile(filepath.Join("testdata", "template_custom.txt"))
	if err != nil {
		t.Fatal(err)
	}
	crlf := filepath.Join(t.TempDir(), "crlf.txt")
	if err := os.WriteFile(crlf, []byte(strings.ReplaceAll(string(raw), "\n", "\r\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl2, err := LoadTemplate(crlf)
	if err != nil {
		t.Fatal(err)
	}
	if tpl2.Hash() != tpl.Hash() {
		t.Errorf("CRLF copy hash %s != %s", tpl2.Hash(), tpl.Hash())
	}
}

func TestLoadTemplateErrors(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"template_unknown.txt", "template_unknown.txt:3: unknown placeholder {{language}}"},
		{"template_missing.txt", "template_missing.txt: missing placeholder {{response}}"},
		{"no_such_file.txt", "no_such_file.txt"},
	}
	for _, tc := range tests {
		_, err := LoadTemplate(filepath.Join("testdata", tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadTemplate(%s) error = %v, want %q", tc.file, err, tc.want)
		}
	}
}
