// Package message is the one chat-message type of codeplan (no cgo): what
// llama renders with a model's chat template, what planner builds prompts
// from, and what the OpenAI-compatible client sends.
package message

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`    // "system", "user" or "assistant"
	Content string `json:"content"` // the turn's text
}
