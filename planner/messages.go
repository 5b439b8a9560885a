package planner

import (
	"github.com/codeplan-dev/codeplan/llama/message"
)

// Chat roles (llama/message's).
const (
	RoleSystem    = message.RoleSystem
	RoleUser      = message.RoleUser
	RoleAssistant = message.RoleAssistant
)

// Message is one chat turn (message.Message, the one chat-message type).
type Message = message.Message

// ChatTemplater renders messages with a model's own chat template
// (message.Templater: llama.Model implements it, ChatML is the pure-Go
// fallback).
type ChatTemplater = message.Templater

// ChatML renders the ChatML format (message.ChatML).
type ChatML = message.ChatML

// ChatML markers, exported so tests and tools can build expected strings.
const (
	ChatMLStart = message.ChatMLStart
	ChatMLEnd   = message.ChatMLEnd
)

// checkRole reports an error for any role outside the three chat roles.
func checkRole(role string) error { return message.CheckRole(role) }
