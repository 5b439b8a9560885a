package chat

import "strings"

// Fence opens and closes a multi-line message: everything between a line
// that is exactly `"""` and the next such line is one message, blank lines
// included (a pasted text or code block).
const Fence = `"""`

// LineJoiner assembles messages that span several input lines. A line
// ending in a backslash continues on the next line (the backslash is
// dropped and a newline kept), and a Fence line starts a block that the
// next Fence line ends. Every other line is a message of its own, exactly
// as before, so single-line chats and scripts are unaffected.
type LineJoiner struct {
	parts   []string
	inFence bool
}

// Feed takes one input line (without its newline) and returns the complete
// message once there is one; ok is false while more lines are needed.
func (j *LineJoiner) Feed(line string) (msg string, ok bool) {
	line = strings.TrimRight(line, "\r")
	if j.inFence {
		if strings.TrimSpace(line) == Fence {
			j.inFence = false
			return j.take(), true
		}
		j.parts = append(j.parts, line)
		return "", false
	}
	if strings.TrimSpace(line) == Fence && len(j.parts) == 0 {
		j.inFence = true
		return "", false
	}
	if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
		j.parts = append(j.parts, strings.TrimSuffix(line, `\`))
		return "", false
	}
	j.parts = append(j.parts, line)
	return j.take(), true
}

// Pending reports whether a message is being assembled: the prompt should
// then show that more input is expected.
func (j *LineJoiner) Pending() bool { return j.inFence || len(j.parts) > 0 }

// Flush returns whatever was assembled when the input ends mid-message
// (an unclosed fence, a final backslash), so that nothing typed is lost.
func (j *LineJoiner) Flush() (string, bool) {
	if !j.Pending() {
		return "", false
	}
	j.inFence = false
	return j.take(), true
}

func (j *LineJoiner) take() string {
	msg := strings.Join(j.parts, "\n")
	j.parts = j.parts[:0]
	return msg
}
