package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// Error types, as OpenAI names them, so that client libraries map them to
// their usual exception classes.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
	typeTimeout        = "timeout_error"
)

// statusClientClosed is logged (never sent) when the client went away before
// the answer was ready; nginx uses the same number, so log readers know it.
const statusClientClosed = 499

// apiError is an error answered to the client as OpenAI's error object:
// {"error":{"message","type","param","code"}}.
type apiError struct {
	Status  int    // HTTP status
	Message string // for humans: says what was wrong and how to fix it
	Type    string // OpenAI error type, e.g. invalid_request_error
	Param   string // request field at fault ("" = none)
	Code    string // machine-readable reason ("" = none)
	// RetryAfter, when > 0, is sent as the Retry-After header (seconds).
	RetryAfter int
}

// Error implements error.
func (e *apiError) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%d %s: %s (param %s)", e.Status, e.Type, e.Message, e.Param)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message)
}

// errorBody is the JSON shape of an apiError; param and code are null when
// empty, as in OpenAI's answers.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) body() errorBody {
	d := errorDetail{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		d.Param = &e.Param
	}
	if e.Code != "" {
		d.Code = &e.Code
	}
	return errorBody{Error: d}
}

// badRequest is a 400 about one request field.
func badRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// writeError answers e as JSON. Errors that say "come back later" carry
// Retry-After so that well-behaved clients back off instead of hammering.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(e.body())
	_, _ = w.Write(append(b, '\n'))
}

// asAPIError returns err as an *apiError, wrapping anything else as a 500.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: err.Error()}
}

// jsonField turns encoding/json's path of a field (which names the Go
// structs embedded on the way, e.g. "samplingFields.top_p") into the JSON
// path a client wrote ("top_p"), by dropping the embedded structs' names.
func jsonField(path string) string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		if _, embedded := embeddedStructs[part]; embedded {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, ".")
}

// embeddedStructs are the Go structs embedded without a JSON name in the
// request types; their names must never reach a client.
var embeddedStructs = map[string]struct{}{"samplingFields": {}}

// jsonTypeName says in JSON's words what a Go field accepts.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}
