// Package chattemplate renders planner's chat messages with a model's own
// chat template (llama.cpp's llama_chat_apply_template). It is the one
// bridge from a llama.Model to planner.ChatTemplater, shared by training
// (which must lay out examples exactly as inference will) and inference.
package chattemplate

import (
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
)

// Model renders chat messages with a llama.Model's own template.
type Model struct{ Model *llama.Model }

// ApplyTemplate implements planner.ChatTemplater.
func (t Model) ApplyTemplate(msgs []planner.Message, addAssistant bool) (string, error) {
	cm := make([]llama.ChatMessage, len(msgs))
	for i, m := range msgs {
		cm[i] = llama.ChatMessage{Role: m.Role, Content: m.Content}
	}
	return t.Model.ApplyTemplate(cm, addAssistant)
}

// For returns the model's chat template, or ChatML when llama.cpp does not
// support the model's template; native says which (a warning is the
// caller's job).
func For(m *llama.Model) (tmpl planner.ChatTemplater, native bool) {
	t := Model{Model: m}
	if _, err := t.ApplyTemplate([]planner.Message{{Role: planner.RoleUser, Content: "x"}}, true); err != nil {
		return planner.ChatML{}, false
	}
	return t, true
}
