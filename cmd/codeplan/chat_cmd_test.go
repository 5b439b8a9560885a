package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/codeplan-dev/codeplan/chat"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
)

// runChatScript runs `codeplan chat` in-process with script as stdin and
// returns stdout, stderr and the error of the run. One thread: the test
// machine's cores are shared, and more threads only wait on each other.
func runChatScript(t *testing.T, script string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp()
	app.Reader = strings.NewReader(script)
	app.Writer = &out
	app.ErrWriter = &errb
	argv := append([]string{"codeplan", "-q", "chat", "tiny", "--threads", "1"}, args...)
	err := app.Run(interspersed(app, argv))
	return out.String(), errb.String(), err
}

// chatMarkers returns the "Plan:" and "Answer:" lines of plain chat output.
func chatMarkers(out string) []string {
	var m []string
	for _, l := range strings.Split(out, "\n") {
		if l == "Plan:" || l == "Answer:" {
			m = append(m, l)
		}
	}
	return m
}

func TestChatScript(t *testing.T) {
	dir := t.TempDir()
	jsonl, md := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.md")
	script := strings.Join([]string{
		"What is 2+3*4?",
		"/mode direct",
		"Say hello.",
		"/save " + jsonl,
		"/reset",
		"/mode codeplan",
		"again",
		"/save " + md,
		"/exit",
		"this line is never read",
	}, "\n") + "\n"
	out, errOut, err := runChatScript(t, script, "--max-plan-tokens", "8", "--max-tokens", "12")
	if err != nil {
		t.Fatalf("chat failed: %v\nstderr:\n%s", err, errOut)
	}
	// Codeplan turns show a plan, the direct turn does not, and nothing
	// after /exit ran.
	want := []string{"Plan:", "Answer:", "Answer:", "Plan:", "Answer:"}
	if got := chatMarkers(out); !slices.Equal(got, want) {
		t.Errorf("markers %v, want %v; stdout:\n%s", got, want, out)
	}
	if !strings.HasPrefix(out, "Plan:\n") || !strings.HasSuffix(out, "\n\n") {
		t.Errorf("stdout layout:\n%q", out)
	}
	for _, s := range []string{"mode: direct", "saved 2 turns to " + jsonl, "conversation cleared (2 turns forgotten)", "mode: codeplan", "saved 1 turn to " + md} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errOut)
		}
	}

	f, err := os.Open(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exs, err := chat.ReadJSONL(f, jsonl)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 {
		t.Fatalf("%s has %d turns, want 2", jsonl, len(exs))
	}
	a, b := exs[0], exs[1]
	if a.Mode != planner.CodePlan || a.User != "What is 2+3*4?" || a.PlanFinish == "" || a.PlanTokens == 0 || a.AnswerTokens == 0 || a.ContextTurns != 0 {
		t.Errorf("turn 1 = %+v", a)
	}
	if b.Mode != planner.Direct || b.Plan != "" || b.PlanFinish != "" || b.PlanTokens != 0 || b.ContextTurns != 1 || b.Turn != 2 {
		t.Errorf("turn 2 = %+v", b)
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mdText), "## Turn 1 (codeplan)\n\n**User:**\n\nagain\n") || strings.Contains(string(mdText), "Turn 2") {
		t.Errorf("%s after /reset:\n%s", md, mdText)
	}
}

// TestChatTrimsHistory fills a 256-token context: every turn must fit, the
// oldest turns are dropped while the newest stay, a message too long for
// the context is refused without ending the chat, and a script with a
// failed line exits with an error naming the line.
func TestChatTrimsHistory(t *testing.T) {
	const ctx, maxPlan, maxAnswer = 256, 8, 16
	var lines []string
	for i := 1; i <= 8; i++ {
		lines = append(lines, fmt.Sprintf("message %d: what comes next?", i))
		if i == 5 {
			lines = append(lines, strings.Repeat("far too long ", 30))
		}
	}
	out, errOut, err := runChatScript(t, strings.Join(lines, "\n")+"\n", "--json", "--format", "trained", "--ctx", fmt.Sprint(ctx),
		"--max-plan-tokens", fmt.Sprint(maxPlan), "--max-tokens", fmt.Sprint(maxAnswer))
	if err == nil || !strings.Contains(err.Error(), "1 input line(s) failed; the first, stdin line 6") {
		t.Errorf("err = %v, want the too-long line 6 reported", err)
	}
	var recs []chat.TurnRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r chat.TurnRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 9 {
		t.Fatalf("%d turn records, want 9:\n%s", len(recs), out)
	}
	dropped, prev := false, -1
	for i, r := range recs {
		if i == 5 {
			if !strings.Contains(r.Error, "does not fit in the context") {
				t.Errorf("long message: %+v", r)
			}
			continue
		}
		if r.Error != "" {
			t.Errorf("turn %d failed: %s", r.Turn, r.Error)
			continue
		}
		if used := r.PromptTokens + r.PlanTokens + r.AnswerTokens; used >= ctx || r.PromptTokens+maxPlan+maxAnswer >= ctx {
			t.Errorf("turn %d uses %d tokens (prompt %d) of %d", r.Turn, used, r.PromptTokens, ctx)
		}
		if r.ContextTurns < r.Turn-1 {
			dropped = true
		}
		// The newest turns stay: after the first turn there is always
		// history, and it never shrinks by more than the turns dropped for
		// one longer message.
		if r.Turn > 1 && r.ContextTurns == 0 {
			t.Errorf("turn %d was sent without any history", r.Turn)
		}
		if prev >= 0 && r.ContextTurns > prev+1 {
			t.Errorf("turn %d: %d context turns after %d", r.Turn, r.ContextTurns, prev)
		}
		prev = r.ContextTurns
	}
	if !dropped {
		t.Errorf("no turn was dropped: the test does not fill the context")
	}
	if strings.Count(errOut, "note: dropped the") != 1 {
		t.Errorf("the trimming note should appear once:\n%s", errOut)
	}
}

func TestChatBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--mode", "fast"}, {"--format", "free"}, {"--max-tokens", "0"}, {"--top-p", "2"}} {
		_, _, err := runChatScript(t, "", args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

// chatPTY is `codeplan chat` running on a pseudo-terminal.
type chatPTY struct {
	t    *testing.T
	f    *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	raw  bytes.Buffer
	done chan error
}

var chatANSI = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func startChatPTY(t *testing.T, cache string, args ...string) *chatPTY {
	t.Helper()
	model, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	// TestMain makes the test binary act as codeplan.
	cmd := exec.Command(os.Args[0], append([]string{"-q", "chat", model, "--threads", "1"}, args...)...)
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1", "XDG_CACHE_HOME="+cache, "HOME="+cache, "TERM=xterm", "NO_COLOR=")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	p := &chatPTY{t: t, f: f, cmd: cmd, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			p.mu.Lock()
			p.raw.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		f.Close()
	})
	return p
}

// screen is the output so far without colours, cursor moves and CRs.
func (p *chatPTY) screen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.ReplaceAll(chatANSI.ReplaceAllString(p.raw.String(), ""), "\r", "")
}

// expect waits until want appears in the output at or after byte from of
// screen() and returns the offset just past it.
func (p *chatPTY) expect(from int, want string, timeout time.Duration) int {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := p.screen()
		if from <= len(s) {
			if i := strings.Index(s[from:], want); i >= 0 {
				return from + i + len(want)
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %q after byte %d; output:\n%s", want, from, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *chatPTY) send(s string) {
	p.t.Helper()
	if _, err := p.f.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the chat to exit and checks its exit status.
func (p *chatPTY) wait(code int) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("chat did not exit; output:\n%s", p.screen())
	}
	if got := p.cmd.ProcessState.ExitCode(); got != code {
		p.t.Fatalf("exit status %d, want %d; output:\n%s", got, code, p.screen())
	}
}

func TestChatPTY(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the chat on a pseudo-terminal")
	}
	cache := t.TempDir()
	// A long answer limit, so that the reply is still streaming when
	// Ctrl-C arrives.
	p := startChatPTY(t, cache, "--ctx", "8192", "--max-plan-tokens", "8", "--max-tokens", "8000")
	at := p.expect(0, "/help for commands", 30*time.Second)
	at = p.expect(at, "you> ", 10*time.Second)
	p.send("hello there\r")
	at = p.expect(at, "── plan ──\n", 10*time.Second)
	at = p.expect(at, "── answer ──\n", 10*time.Second)
	// Some answer text has streamed: the generation is under way.
	for deadline := time.Now().Add(10 * time.Second); len(p.screen()) < at+40; {
		if time.Now().After(deadline) {
			t.Fatalf("the answer does not stream:\n%s", p.screen())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.send("\x03")
	at = p.expect(at, "[cancelled]", 10*time.Second)
	at = p.expect(at, "you> ", 10*time.Second)
	// Still alive: commands work.
	p.send("/mode direct\r")
	at = p.expect(at, "mode: direct", 10*time.Second)
	at = p.expect(at, "you> ", 10*time.Second)
	p.send("/exit\r")
	p.wait(0)

	hist, err := os.ReadFile(filepath.Join(cache, "codeplan", "chat_history"))
	if err != nil {
		t.Fatalf("no persistent history: %v", err)
	}
	if !strings.Contains(string(hist), "hello there\n") || !strings.Contains(string(hist), "/mode direct\n") {
		t.Errorf("history file:\n%s", hist)
	}

	t.Run("ctrl-c at an empty prompt exits", func(t *testing.T) {
		p := startChatPTY(t, cache)
		p.expect(0, "you> ", 30*time.Second)
		p.send("\x03")
		p.wait(0)
	})
	t.Run("ctrl-d exits", func(t *testing.T) {
		p := startChatPTY(t, cache)
		p.expect(0, "you> ", 30*time.Second)
		p.send("\x04")
		p.wait(0)
	})
}

// TestChatMultiLineScript checks that piped input can hold multi-line
// messages (a """ block and backslash continuation) and /set changes.
func TestChatMultiLineScript(t *testing.T) {
	script := strings.Join([]string{
		`"""`, "first line", "", "third line", `"""`,
		`continued \`, "here",
		"/set max_tokens 4",
		"short",
	}, "\n") + "\n"
	out, stderr, err := runChatScript(t, script, "--json", "--max-tokens", "8", "--max-plan-tokens", "8")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var turns []chat.TurnRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r chat.TurnRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		turns = append(turns, r)
	}
	if len(turns) != 3 {
		t.Fatalf("%d turns, want 3:\n%s", len(turns), out)
	}
	if turns[0].User != "first line\n\nthird line" || turns[1].User != "continued \nhere" {
		t.Errorf("users %q, %q", turns[0].User, turns[1].User)
	}
	if turns[2].AnswerTokens > 4 || turns[0].Seconds <= 0 {
		t.Errorf("after /set max_tokens 4 the answer has %d tokens; seconds %g", turns[2].AnswerTokens, turns[0].Seconds)
	}
}
