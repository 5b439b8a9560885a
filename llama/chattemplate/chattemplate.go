// Package chattemplate renders chat messages with a model's own chat
// template (llama.cpp's llama_chat_apply_template). It is the one bridge
// from a llama.Model to message.Templater (planner.ChatTemplater), shared by
// training (which must lay out examples exactly as inference will) and
// inference.
package chattemplate

import (
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/message"
)

// Model renders chat messages with a llama.Model's own template.
type Model struct{ Model *llama.Model }

// ApplyTemplate implements message.Templater.
func (t Model) ApplyTemplate(msgs []message.Message, addAssistant bool) (string, error) {
	return t.Model.ApplyTemplate(msgs, addAssistant)
}

// For returns the model's chat template, or ChatML when llama.cpp does not
// support the model's template; native says which (a warning is the
// caller's job).
func For(m *llama.Model) (tmpl message.Templater, native bool) {
	return message.Native(Model{Model: m})
}
