package planner_test

import (
	"fmt"

	"github.com/codeplan-dev/codeplan/planner"
)

// The two-phase inference flow of codeplan, with the ChatML fallback template.
func ExamplePrompter() {
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}}
	phase1, _ := p.PlanPrompt(nil, "What is 2+3*4?")
	fmt.Printf("phase 1: %q stop at %q\n", phase1.Text, phase1.Stop)
	// ... the model writes the plan and stops at "\n```" ...
	plan := "product = multiply(3, 4)\nreturn add(2, product)"
	phase2, _ := p.AnswerPrompt(nil, "What is 2+3*4?", plan)
	fmt.Printf("phase 2: %q\n", phase2.Text)
	// Output:
	// phase 1: "<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n<|im_start|>assistant\nPlan:\n```python\n" stop at ["\n```" "\nResponse:"]
	// phase 2: "<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n<|im_start|>assistant\nPlan:\n```python\nproduct = multiply(3, 4)\nreturn add(2, product)\n```\nResponse:\n"
}

// The example of the package doc: one fine-tuning example split into the
// unscored prefix and the scored target.
func ExamplePrompter_TrainingExample() {
	p := planner.Prompter{Mode: planner.CodePlan, Format: planner.Trained, Chat: planner.ChatML{}}
	prefix, target, err := p.TrainingExample("What is 2+3*4?",
		"product = multiply(3, 4)\nreturn add(2, product)", "3*4 = 12, and 2 + 12 = 14.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(prefix, "|", target)
	// Output:
	// <|im_start|>user
	// What is 2+3*4?<|im_end|>
	// <|im_start|>assistant
	// |Plan:
	// ```python
	// product = multiply(3, 4)
	// return add(2, product)
	// ```
	// Response:
	// 3*4 = 12, and 2 + 12 = 14.<|im_end|>
}

// Extracting and filtering a plan from an extraction model's output.
func ExampleFilter_Check() {
	out := "Here is the plan:\n```python\ndef solve(q):\n    parts = split_expression(q)\n    return evaluate_in_order(parts)\n```\nHope it helps!"
	plan, reason := planner.NewFilter(planner.FilterConfig{}).Check(planner.Candidate{Output: out})
	fmt.Println(reason)
	fmt.Println(plan)
	// Output:
	// ok
	// def solve(q):
	//     parts = split_expression(q)
	//     return evaluate_in_order(parts)
}
