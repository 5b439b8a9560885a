package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// PaperExtractionTemplate is the plan-extraction instruction of the CodePlan
// paper (Wen et al., "Unlocking Reasoning Potential in Large Language Models
// by Scaling Code-form Planning", arXiv 2409.12452, ICLR 2025), word for word
// and with its line breaks, as quoted in the project's founding notes on the
// paper (see PAPER.md in the project's shared notes). It is the default.
//
// The row's own text comes first and the instruction last, as in the paper,
// so only the chat header is shared by all rows (the prefix cache saves
// little with it), and it does not ask for a code fence: FindCode accepts
// fenced and bare code alike.
const PaperExtractionTemplate = "Prompt: {{Prompt}}\n" +
	"Response: {{Response}}\n" +
	"Given a prompt-response pair, your task is to describe the high-level logic of the response using a pseudo Python code. " +
	"Such that following this code, models can easily generate the response.\n" +
	"The code should balance conciseness and informativeness. " +
	"The code should be high-level, instead of replicating low-level details in the response. " +
	"The code should be less than 200 words (adjust its length based on response lengths)."

// DefaultExtractionTemplate is the template used when none is chosen: the
// paper's (PaperExtractionTemplate).
const DefaultExtractionTemplate = PaperExtractionTemplate

// StructuredExtractionTemplate is codeplan's own, more prescriptive
// instruction (`--template structured`), written before the paper's text was
// known: it spells out what the paper describes (Python-style pseudocode with
// functions, if/for and calls to sub-steps; the structure of the reasoning,
// not its details or final answer) and asks for a single python code block.
// Because the instruction comes before the row's text, every extraction
// prompt shares it as a prefix, which the engine's prefix cache computes once.
const StructuredExtractionTemplate = `You are given a question and a reference response to it. Write a code-form plan for the response: concise Python-style pseudocode that outlines the high-level reasoning steps the response follows to reach its answer.

Requirements:
- Write Python-like pseudocode: define functions for the main steps, and use if/elif/else, for and while, and calls to sub-steps to show how the steps depend on each other.
- Capture the structure of the reasoning, not its details: name each step by what it does (for example identify_given_values(question), apply_formula(...), check_constraints(...)) and leave the actual computations and wording to the called steps.
- A reader who sees only the question and your plan should be able to follow the same line of reasoning as the response.
- Keep it short: usually 5 to 30 lines; brief comments are allowed.
- Do not copy sentences from the response, and do not state the final answer or concrete intermediate results.
- Output only the plan, in a single ` + "```python" + ` code block, with nothing before or after it.

Question:
{{prompt}}

Response:
{{response}}`

// namedTemplates are the built-in templates that --template accepts by name.
var namedTemplates = map[string]string{
	"paper":      PaperExtractionTemplate,
	"structured": StructuredExtractionTemplate,
}

// Template is a plan-extraction prompt with {{prompt}} and {{response}}
// placeholders, matched case-insensitively ({{Prompt}} and {{Response}} in the
// paper's text; spaces inside the braces are allowed). Any other {{name}} is
// an error, caught when the template is parsed. Other braces are literal text.
type Template struct {
	source string // file path, or the built-in template's name
	text   string
}

// placeholderRE matches {{name}}-style placeholders, including Go-template
// forms such as {{.Prompt}} so that they are reported instead of passed on.
var placeholderRE = regexp.MustCompile(`\{\{\s*(\.?[A-Za-z_][A-Za-z0-9_.]*)\s*\}\}`)

// DefaultTemplate returns the built-in extraction template, the paper's.
func DefaultTemplate() *Template {
	// TestBuiltinTemplatesParse checks that this equals
	// ParseTemplate("paper", DefaultExtractionTemplate).
	return &Template{source: "paper", text: DefaultExtractionTemplate}
}

// TemplateNames lists the names NamedTemplate accepts, default first.
func TemplateNames() []string { return []string{"paper", "structured"} }

// NamedTemplate returns a built-in template by name ("paper", the default,
// or "structured"); ok is false for any other name.
func NamedTemplate(name string) (t *Template, ok bool) {
	text, ok := namedTemplates[name]
	if !ok {
		return nil, false
	}
	return &Template{source: name, text: text}, true
}

// TemplateFromFlag resolves a --template value: empty means the default, a
// built-in name (see TemplateNames) selects that template, anything else is
// a file read with LoadTemplate. A file with a built-in template's name can
// be given as ./NAME.
func TemplateFromFlag(v string) (*Template, error) {
	if v == "" {
		return DefaultTemplate(), nil
	}
	if t, ok := NamedTemplate(v); ok {
		return t, nil
	}
	return LoadTemplate(v)
}

// LoadTemplate reads an extraction template from a UTF-8 text file. Line
// endings are normalised to "\n" and trailing whitespace at the end of the file
// is dropped, so that editors do not change the template's Hash.
func LoadTemplate(path string) (*Template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("planner: extraction template: %w", err)
	}
	defer f.Close()
	// A device (/dev/zero) or a pipe that never ends would be read without
	// bound; a template is a page of text.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("planner: extraction template %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTemplateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("planner: extraction template: %w", err)
	}
	if len(b) > maxTemplateBytes {
		return nil, fmt.Errorf("planner: extraction template %s is over %d KiB; a template is a prompt, not a corpus", path, maxTemplateBytes>>10)
	}
	return ParseTemplate(path, string(b))
}

// maxTemplateBytes bounds a template file.
const maxTemplateBytes = 1 << 20

// ParseTemplate validates a template text. source names it in errors (a
// file path, or any label). Both {{prompt}} and {{response}} must occur.
func ParseTemplate(source, text string) (*Template, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.TrimRight(text, " \t\n")
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("planner: extraction template %s is empty", source)
	}
	seen := map[string]bool{}
	for _, loc := range placeholderRE.FindAllStringSubmatchIndex(text, -1) {
		name := strings.ToLower(text[loc[2]:loc[3]])
		if name != "prompt" && name != "response" {
			line := 1 + strings.Count(text[:loc[0]], "\n")
			return nil, fmt.Errorf("planner: extraction template %s:%d: unknown placeholder %s (want {{prompt}} or {{response}})",
				source, line, text[loc[0]:loc[1]])
		}
		seen[name] = true
	}
	for _, name := range []string{"prompt", "response"} {
		if !seen[name] {
			return nil, fmt.Errorf("planner: extraction template %s: missing placeholder {{%s}}", source, name)
		}
	}
	return &Template{source: source, text: text}, nil
}

// Source returns the file path the template was loaded from, or the name of
// the built-in template ("paper", "structured").
func (t *Template) Source() string { return t.source }

// Text returns the template text with its placeholders.
func (t *Template) Text() string { return t.text }

// Hash returns the first 12 hex digits of the SHA-256 of the template text, a
// short stable id recorded with generated plans for provenance.
func (t *Template) Hash() string {
	sum := sha256.Sum256([]byte(t.text))
	return hex.EncodeToString(sum[:])[:12]
}

// Render substitutes the prompt and the response. Substitution is a single
// pass over the template, so placeholder-like text inside the prompt or the
// response is left alone. Unknown placeholders are an error (they can only
// appear in a Template not made by ParseTemplate).
func (t *Template) Render(prompt, response string) (string, error) {
	if t == nil || t.text == "" {
		return "", fmt.Errorf("planner: extraction template is empty (use DefaultTemplate or LoadTemplate)")
	}
	var bad string
	out := placeholderRE.ReplaceAllStringFunc(t.text, func(m string) string {
		switch strings.ToLower(strings.Trim(m, "{} \t\n")) {
		case "prompt":
			return prompt
		case "response":
			return response
		}
		if bad == "" {
			bad = m
		}
		return m
	})
	if bad != "" {
		return "", fmt.Errorf("planner: extraction template %s: unknown placeholder %s", t.source, bad)
	}
	return out, nil
}
