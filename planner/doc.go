// Package planner is the CodePlan method in text form: the plan-extraction
// prompt, the answer modes and prompt formats shared by chat, generate, serve,
// eval and finetune, and the parsing and filtering of extracted plans.
//
// It is pure Go and knows nothing about llama.cpp: where a model's chat
// template is needed it takes a ChatTemplater (chattemplate.Model adapts a
// llama.Model to it; ChatML is a pure-Go fallback).
//
// # Modes and formats
//
// A Mode says what the model writes before its answer: nothing (direct),
// numbered natural-language steps (nlplan) or a Python-style pseudocode plan
// (codeplan, the method). A Format says how that is asked for: trained (the
// layout below, learnt in fine-tuning; the user message is left unchanged) or
// prompted (for an untrained instruct model: CodePlanInstruction or
// NLPlanInstruction is appended to the last user message, after a blank line,
// and asks for the very same layout). Both formats prefill the assistant turn
// with the same plan opener and use the same delimiters, stop strings and
// parser; they differ only in that instruction.
//
// # The trained format
//
// The assistant turn, built only by AssistantText, is exactly:
//
//	codeplan:  "Plan:\n```python\n" + PLAN + "\n```\nResponse:\n" + RESPONSE
//	nlplan:    "Plan:\n" + PLAN + "\nResponse:\n" + RESPONSE
//	direct:    RESPONSE
//
// where PLAN is CleanPlan(plan) (trailing spaces and blank lines at both
// ends removed, indentation kept) and RESPONSE is the response with
// surrounding whitespace trimmed. Nothing else is added: no blank line
// between the parts, no language tag other than "python", no text after the
// response except what the chat template appends (its end-of-turn marker).
// The turn goes through the model's own chat template like any assistant
// message. For example, with ChatML:
//
//	<|im_start|>user
//	What is 2+3*4?<|im_end|>
//	<|im_start|>assistant
//	Plan:
//	```python
//	product = multiply(3, 4)
//	return add(2, product)
//	```
//	Response:
//	3*4 = 12, and 2 + 12 = 14.<|im_end|>
//
// A plan may not contain its own closing delimiter: for codeplan a line
// starting with ``` or ~~~, for nlplan a line that is a "Response:" header.
// AssistantText rejects such plans rather than write ambiguous data.
//
// # Training and inference
//
// Prompter.TrainingExample splits one rendered example into a prefix (the
// conversation up to and including the assistant header; not scored by the
// loss) and a target (the assistant turn above plus the template's
// end-of-turn text; scored). Because the plan opener "Plan:\n```python\n" is
// part of the target, the model learns to start every reply with it.
//
// Inference uses the same strings in two phases. Prompter.PlanPrompt ends
// with the assistant header followed by the plan opener, so the model writes
// the plan directly and stops at "\n```" (nlplan: "\nResponse:").
// Prompter.AnswerPrompt is that text plus CleanPlan(plan) plus the answer
// opener "\n```\nResponse:\n" (nlplan: "\nResponse:\n"), so the model writes only
// the answer. Prompter.OneShotPrompt lets the model write both in one call;
// SplitOutput recovers plan and answer from such an output. Direct mode has
// no plan phase: its AnswerPrompt ends with the assistant header.
//
// # Extraction data
//
// Template renders the plan-extraction instruction for a (prompt, response)
// pair; the default is the paper's own instruction, verbatim
// (PaperExtractionTemplate), StructuredExtractionTemplate is codeplan's more
// prescriptive alternative, and LoadTemplate reads a replacement
// (TemplateFromFlag resolves --template); Hash identifies the template used. FindCode pulls the plan out of the
// extraction model's output and Filter.Check decides whether to keep it,
// with a Reason for every rejection, not_terminated (the paper's main
// filter: the generation hit the token limit) first.
package planner
