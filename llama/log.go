package llama

// #include "shim.h"
import "C"

import (
	"strings"
	"sync"
)

// LogLevel is the severity of a llama.cpp/ggml log line.
type LogLevel int

// Log levels, in increasing severity.
const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

var (
	logMu      sync.Mutex
	logHandler func(LogLevel, string)
	logPartial strings.Builder
	logLevel   LogLevel
)

// SetLogHandler routes llama.cpp's and ggml's log lines to h (nil drops them,
// the default: llama.cpp is chatty, and codeplan logs what matters itself).
// Lines arrive whole, without the trailing newline.
func SetLogHandler(h func(LogLevel, string)) {
	Init()
	logMu.Lock()
	logHandler = h
	logMu.Unlock()
}

//export goLog
func goLog(level C.int, text *C.char) {
	logMu.Lock()
	defer logMu.Unlock()
	if logHandler == nil {
		return
	}
	// ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation.
	switch int(level) {
	case 1:
		logLevel = LogDebug
	case 2:
		logLevel = LogInfo
	case 3:
		logLevel = LogWarn
	case 4:
		logLevel = LogError
	}
	logPartial.WriteString(C.GoString(text))
	s := logPartial.String()
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(s[:i], " \r"); line != "" {
			logHandler(logLevel, line)
		}
		s = s[i+1:]
	}
	logPartial.Reset()
	logPartial.WriteString(s)
}
