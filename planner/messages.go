package planner

import (
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/llama/message"
)

// Chat roles. Only these three are accepted anywhere in this package, so a
// typo in a role fails early instead of producing a silently odd prompt.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat turn (message.Message, the one chat-message type).
type Message = message.Message

// ChatTemplater renders messages with a model's own chat template.
//
// llama.Model implements it with the template stored in the GGUF file; ChatML
// is a pure-Go implementation for tests and for models without a template.
// When addAssistant is true the result ends with the header that opens an
// assistant turn, so that the model's next tokens are the assistant's reply.
type ChatTemplater interface {
	ApplyTemplate(msgs []Message, addAssistant bool) (string, error)
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

// ApplyTemplate implements ChatTemplater.
func (ChatML) ApplyTemplate(msgs []Message, addAssistant bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		if err := checkRole(m.Role); err != nil {
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

// checkRole reports an error for any role outside the three chat roles.
func checkRole(role string) error {
	switch role {
	case RoleSystem, RoleUser, RoleAssistant:
		return nil
	case "":
		return fmt.Errorf("empty role")
	default:
		return fmt.Errorf("unknown role %q (want system, user or assistant)", role)
	}
}
