package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// shape is one well-known layout of a (prompt, response) row.
type shape struct {
	prompt   string // key of the prompt, or of the chat array when chat is set
	input    string // optional key appended to the prompt (Alpaca "input")
	response string
	chat     bool
}

// shapes are tried in order; the first whose prompt key exists decides the
// layout of the row, so that a row with "prompt" but no "response" is
// reported as missing its response rather than as unrecognized.
var shapes = []shape{
	{prompt: "prompt", response: "response"},
	{prompt: "instruction", input: "input", response: "output"},
	{prompt: "question", response: "answer"},
	{prompt: "query", response: "response"},
	{prompt: "conversations", chat: true},
	{prompt: "messages", chat: true},
}

// responseKeys are tried when only the prompt field was given explicitly.
var responseKeys = []string{"response", "output", "answer"}

const (
	reasonInvalidJSON = "invalid JSON"
	reasonNotObject   = "row is not a JSON object"
	reasonNoShape     = "no prompt/response fields found (tried prompt/response, instruction/output, question/answer, query/response, conversations, messages)"
)

// fieldFinder pulls prompt, response and id out of one JSON object according to
// ReadOptions. It holds no per-row state, so one fieldFinder serves a whole file.
type fieldFinder struct {
	promptPath, responsePath, idPath string
	promptOnly                       bool
}

func newFieldFinder(opts ReadOptions) *fieldFinder {
	return &fieldFinder{promptPath: opts.PromptField, responsePath: opts.ResponseField, idPath: opts.IDField, promptOnly: opts.PromptOnly}
}

// extract returns the fields of obj, or a non-empty reason why it is malformed.
// obj must already be trimmed of surrounding whitespace.
func (e *fieldFinder) extract(obj []byte) (id, prompt, response, reason string) {
	if len(obj) == 0 || obj[0] != '{' {
		if !gjson.ValidBytes(obj) {
			return "", "", "", reasonInvalidJSON
		}
		return "", "", "", reasonNotObject
	}
	if !gjson.ValidBytes(obj) {
		return "", "", "", reasonInvalidJSON
	}
	f := rowFields{obj: obj}
	prompt, response, reason = e.promptResponse(&f)
	if reason != "" && e.promptOnly && strings.TrimSpace(prompt) != "" {
		// A usable prompt is all PromptOnly readers need.
		response, reason = "", ""
	}
	if reason != "" {
		return "", "", "", reason
	}
	id, reason = e.id(&f, prompt, response)
	return id, prompt, response, reason
}

func (e *fieldFinder) promptResponse(f *rowFields) (prompt, response, reason string) {
	// Prompt side: explicit path (maybe a chat array) or the first known shape.
	var sh shape
	if e.promptPath != "" {
		v := f.get(e.promptPath)
		if v.IsArray() {
			prompt, response, reason = chatTurns(e.promptPath, v)
			if reason != "" || e.responsePath == "" {
				return prompt, response, reason
			}
		} else if prompt, reason = stringField(e.promptPath, v); reason != "" {
			return "", "", reason
		}
	} else {
		found := false
		for _, s := range shapes {
			v := f.get(s.prompt)
			if !v.Exists() {
				continue
			}
			found, sh = true, s
			if s.chat {
				prompt, response, reason = chatTurns(s.prompt, v)
				if reason != "" || e.responsePath == "" {
					return prompt, response, reason
				}
				break
			}
			if prompt, reason = stringField(s.prompt, v); reason != "" {
				return "", "", reason
			}
			if s.input != "" {
				if in := f.get(s.input); in.Type == gjson.String && strings.TrimSpace(in.Str) != "" {
					prompt += "\n\n" + in.Str
				}
			}
			break
		}
		if !found {
			return "", "", reasonNoShape
		}
	}

	// Response side: explicit path, the shape's key, or the usual keys.
	switch {
	case e.responsePath != "":
		response, reason = stringField(e.responsePath, f.get(e.responsePath))
	case sh.response != "":
		response, reason = stringField(sh.response, f.get(sh.response))
	default:
		reason = fmt.Sprintf("no response field found (tried %s)", strings.Join(responseKeys, ", "))
		for _, k := range responseKeys {
			if v := f.get(k); v.Exists() {
				response, reason = stringField(k, v)
				break
			}
		}
	}
	if reason != "" {
		// The prompt goes back with the reason: PromptOnly readers use it.
		return prompt, "", reason
	}
	return prompt, response, ""
}

// id returns the row's id: the id field when it is a non-empty string or a
// number, otherwise StableID. Other types are an error because silently
// hashing an object or bool would hide a wrong IDField.
func (e *fieldFinder) id(f *rowFields, prompt, response string) (string, string) {
	path := e.idPath
	if path == "" {
		path = "id"
	}
	v := f.get(path)
	switch v.Type {
	case gjson.String:
		if s := strings.TrimSpace(v.Str); s != "" {
			return s, ""
		}
	case gjson.Number:
		return v.Raw, ""
	case gjson.Null:
	default:
		return "", fmt.Sprintf("field %q is not a string or number (got %s)", path, typeName(v))
	}
	return StableID(prompt, response), ""
}

// StableID is the id given to rows without one: the first 16 hex digits of
// sha256(prompt + "\x00" + response). 64 bits keep accidental collisions
// negligible for corpora of billions of rows, and identical pairs get the
// same id, so duplicates in a corpus are processed once.
func StableID(prompt, response string) string {
	h := sha256.New()
	h.Write([]byte(prompt))
	h.Write([]byte{0})
	h.Write([]byte(response))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// stringField checks that v is a non-blank string.
func stringField(name string, v gjson.Result) (string, string) {
	switch {
	case !v.Exists():
		return "", fmt.Sprintf("missing field %q", name)
	case v.Type != gjson.String:
		return "", fmt.Sprintf("field %q is not a string (got %s)", name, typeName(v))
	case strings.TrimSpace(v.Str) == "":
		return "", fmt.Sprintf("field %q is empty", name)
	}
	return v.Str, ""
}

func typeName(v gjson.Result) string {
	switch v.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "bool"
	case gjson.Number:
		return "number"
	case gjson.String:
		return "string"
	}
	if v.IsArray() {
		return "array"
	}
	return "object"
}

// chatTurns takes the first user turn as the prompt and the first assistant
// turn after it as the response. System turns and anything before the first
// user turn are ignored; later turns are not part of a single-turn pair.
func chatTurns(name string, chat gjson.Result) (prompt, response, reason string) {
	sawUser := false
	chat.ForEach(func(_, m gjson.Result) bool {
		role, text := chatMessage(m)
		switch role {
		case "user":
			if !sawUser && strings.TrimSpace(text) != "" {
				prompt, sawUser = text, true
			}
		case "assistant":
			if sawUser && strings.TrimSpace(text) != "" {
				response = text
				return false
			}
		}
		return true
	})
	switch {
	case !sawUser:
		return "", "", fmt.Sprintf("chat %q has no non-empty user turn", name)
	case response == "":
		// The prompt is returned with the reason, so PromptOnly readers
		// can still use a chat that has no answer yet.
		return prompt, "", fmt.Sprintf("chat %q has no non-empty assistant turn after the first user turn", name)
	}
	return prompt, response, ""
}

// chatMessage normalizes the role and text of one chat message across the
// OpenAI (role/content), ShareGPT (from/value) and Gemini-like (text) styles.
func chatMessage(m gjson.Result) (role, text string) {
	if !m.IsObject() {
		return "", ""
	}
	r := m.Get("role")
	if !r.Exists() {
		r = m.Get("from")
	}
	switch strings.ToLower(strings.TrimSpace(r.String())) {
	case "user", "human":
		role = "user"
	case "assistant", "gpt", "model", "bot":
		role = "assistant"
	default:
		return "", ""
	}
	for _, k := range [...]string{"content", "value", "text"} {
		c := m.Get(k)
		switch {
		case c.Type == gjson.String:
			return role, c.Str
		case c.IsArray():
			return role, joinTextParts(c)
		}
	}
	return role, ""
}

// joinTextParts flattens OpenAI-style content parts ([{"type":"text",
// "text":...}]) into one string, ignoring non-text parts such as images.
func joinTextParts(parts gjson.Result) string {
	var b bytes.Buffer
	parts.ForEach(func(_, p gjson.Result) bool {
		var s string
		switch {
		case p.Type == gjson.String:
			s = p.Str
		case p.IsObject():
			if t := p.Get("type"); t.Exists() && t.String() != "text" {
				return true
			}
			s = p.Get("text").String()
		}
		if s != "" {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(s)
		}
		return true
	})
	return b.String()
}

// knownKey returns the slot of a top-level key that auto-detection looks at,
// or -1.
func knownKey(k string) int {
	switch k {
	case "prompt":
		return 0
	case "response":
		return 1
	case "instruction":
		return 2
	case "input":
		return 3
	case "output":
		return 4
	case "question":
		return 5
	case "answer":
		return 6
	case "query":
		return 7
	case "conversations":
		return 8
	case "messages":
		return 9
	case "id":
		return 10
	}
	return -1
}

// rowFields answers field lookups for one row. Auto-detection probes up to a
// dozen keys, and each gjson lookup of a missing key scans the whole row, so
// the well-known top-level keys are collected in one pass instead; other
// paths go to gjson directly.
type rowFields struct {
	obj     []byte
	top     [11]gjson.Result
	scanned bool
}

func (f *rowFields) get(path string) gjson.Result {
	i := knownKey(path)
	if i < 0 {
		return gjson.GetBytes(f.obj, path)
	}
	if !f.scanned {
		f.scanned = true
		gjson.ParseBytes(f.obj).ForEach(func(k, v gjson.Result) bool {
			// The first occurrence wins, as with gjson.Get.
			if j := knownKey(k.Str); j >= 0 && !f.top[j].Exists() {
				f.top[j] = v
			}
			return true
		})
	}
	return f.top[i]
}
