package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// DefaultExtractionTemplate is the instruction given to an instruct model to
// extract a code-form plan from a (prompt, response) pair, with the
// placeholders {{prompt}} and {{response}}.
//
// It is a RECONSTRUCTION, not the verbatim text of the CodePlan paper
// (Wen et al., arXiv 2409.12452, ICLR 2025): the paper's exact prompt could not
// be found in any source available to us (the indexed arXiv HTML covers only
// its opening). It follows what the paper describes: the plan is Python-style
// pseudocode (functions, if/for, calls to sub-steps) that captures the
// high-level reasoning steps of the response without restating its details or
// its final answer. Its Hash is recorded with every generated plan, so data
// made with a replacement template (LoadTemplate) stays distinguishable.
const DefaultExtractionTemplate = `You are given a question and a reference response to it. Write a code-form plan for the response: concise Python-style pseudocode that outlines the high-level reasoning steps the response follows to reach its answer.

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

// Template is a plan-extraction prompt with {{prompt}} and {{response}}
// placeholders (spaces inside the braces are allowed). Any other {{name}} is an
// error, caught when the template is parsed. Other braces are literal text.
type Template struct {
	source string // file path, or "default"
	text   string
}

// placeholderRE matches {{name}}-style placeholders, including Go-template
// forms such as {{.Prompt}} so that they are reported instead of passed on.
var placeholderRE = regexp.MustCompile(`\{\{\s*(\.?[A-Za-z_][A-Za-z0-9_.]*)\s*\}\}`)

// DefaultTemplate returns the built-in extraction template.
func DefaultTemplate() *Template {
	// TestDefaultTemplateParses checks that this equals
	// ParseTemplate("default", DefaultExtractionTemplate).
	return &Template{source: "default", text: DefaultExtractionTemplate}
}

// LoadTemplate reads an extraction template from a UTF-8 text file. Line
// endings are normalised to "\n" and trailing whitespace at the end of the file
// is dropped, so that editors do not change the template's Hash.
func LoadTemplate(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("planner: extraction template: %w", err)
	}
	return ParseTemplate(path, string(b))
}

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
		name := text[loc[2]:loc[3]]
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

// Source returns the file path the template was loaded from, or "default".
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
		switch strings.Trim(m, "{} \t\n") {
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
