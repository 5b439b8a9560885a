// Package message is the one chat-message type of codeplan (no cgo): what
// llama renders with a model's chat template, what planner builds prompts
// from, and what the OpenAI-compatible client sends; with the interface
// that renders messages and ChatML, its pure-Go rendering.
package message

import (
	"fmt"
	"strings"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`    // "system", "user" or "assistant"
	Content string `json:"content"` // the turn's text
}

// Chat roles. Only these three are accepted, so a typo in a role fails
// early instead of producing a silently odd prompt.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// CheckRole reports an error for any role outside the three chat roles.
func CheckRole(role string) error {
	switch role {
	case RoleSystem, RoleUser, RoleAssistant:
		return nil
	case "":
		return fmt.Errorf("empty role")
	default:
		return fmt.Errorf("unknown role %q (want system, user or assistant)", role)
	}
}

// Templater renders messages with a model's own chat template.
//
// llama.Model implements it with the template stored in the GGUF file; ChatML
// is a pure-Go implementation for tests and for models without a template.
// When addAssistant is true the result ends with the header that opens an
// assistant turn, so that the model's next tokens are the assistant's reply.
type Templater interface {
	ApplyTemplate(msgs []Message, addAssistant bool) (string, error)
}

// Native returns t when it renders a one-message conversation, else ChatML
// (llama.cpp does not support every model's own template); native says
// which, so that the caller can warn.
func Native(t Templater) (tmpl Templater, native bool) {
	if _, err := t.ApplyTemplate([]Message{{Role: RoleUser, Content: "x"}}, true); err != nil {
		return ChatML{}, false
	}
	return t, true
}

// ChatML renders the ChatML format used by Qwen, many fine-tunes and llama.cpp's
// fallback: "<|im_start|>role\ncontent<|im_end|>\n" per message, and
// "<|im_start|>assistant\n" at the end when addAssistant is set.
type ChatML struct{}

// ChatML markers, exported so tests and tools can build expected strings.
const (
	ChatMLStart = "<|im_start|>"
	ChatMLEnd   = "<|im_end|>"
)

// ApplyTemplate implements Templater.
func (ChatML) ApplyTemplate(msgs []Message, addAssistant bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		if err := CheckRole(m.Role); err != nil {
			return "", fmt.Errorf("chatml: message %d: %w", i, err)
		}
		b.WriteString(ChatMLStart)
		b.WriteString(m.Role)
		b.WriteByte('\n')
		b.WriteString(m.Content)
		b.WriteString(ChatMLEnd)
		b.WriteByte('\n')
	}
	if addAssistant {
		b.WriteString(ChatMLStart)
		b.WriteString(RoleAssistant)
		b.WriteByte('\n')
	}
	return b.String(), nil
}
