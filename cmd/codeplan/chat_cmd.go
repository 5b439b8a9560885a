package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/chzyer/readline"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/codeplan-dev/codeplan/chat"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/local"
	"github.com/codeplan-dev/codeplan/planner"
)

func chatCommand() *cli.Command {
	flags := append(modelFlags(1), loraFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "mode", Value: string(planner.CodePlan), Usage: "how to answer: direct, nlplan, codeplan, or auto (the mode the adapter or model was fine-tuned in); change it in the chat with /mode"},
		&cli.StringFlag{Name: "format", Value: Auto, Usage: formatUsage},
		&cli.StringFlag{Name: "system", Usage: "system message `TEXT`"},
		&cli.IntFlag{Name: "max-plan-tokens", Value: planner.DefaultMaxPlanTokens, Usage: "at most `N` tokens of plan"},
		&cli.IntFlag{Name: "max-tokens", Value: planner.DefaultMaxTokens, Usage: "at most `N` tokens of answer"},
		&cli.Float64Flag{Name: "temperature", Usage: "sampling temperature `T` (0 = greedy)"},
		&cli.Float64Flag{Name: "top-p", Usage: "nucleus sampling: keep the most likely tokens up to probability `P` (0 or 1 = off)"},
		&cli.IntFlag{Name: "top-k", Usage: "top-k sampling: keep the `K` most likely tokens (0 = off)"},
		&cli.Float64Flag{Name: "min-p", Usage: "min-p sampling: drop tokens below `P` times the most likely one's probability (0 = off)"},
		&cli.Float64Flag{Name: "repeat-penalty", Value: 1, Usage: "penalty for repeated tokens (1 = off)"},
		&cli.UintFlag{Name: "seed", DefaultText: "random", Usage: "sampling seed `S`, for reproducible chats (random by default, unlike the batch commands' 0, so that a sampled chat differs between sessions; greedy decoding ignores it)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object per turn instead of text (for scripts)"},
	)
	return &cli.Command{
		Name:      "chat",
		Usage:     "talk to a model that plans first",
		ArgsUsage: "MODEL.gguf",
		Description: `An interactive chat: every answer starts with a plan (Python-like
pseudocode in --mode codeplan, numbered steps in nlplan, none in direct),
shown apart from the answer. History is kept within the context window: the
oldest turns are dropped when a new message would not fit.

Commands: /mode direct|nlplan|codeplan, /plan on|off, /system TEXT,
/set temperature|top_p|max_tokens|max_plan_tokens VALUE, /reset,
/save FILE (.jsonl or .md), /help, /exit. A message spans several lines
when a line ends in \ or when it is pasted between two lines of """. Ctrl-C stops a reply; Ctrl-C on an empty line
or Ctrl-D leaves. Input history is kept in the user cache folder
(codeplan/chat_history).

When stdin is not a terminal, each line is one message (or command) and the
replies are printed plainly ("Plan:" and "Answer:" markers, a blank line after
each turn) or, with --json, as one JSON object per turn; notes go to stderr
and the exit status is 1 when any line failed:

   printf 'What is 2+3*4?\n/save chat.md\n' | codeplan chat tiny --max-tokens 64`,
		Flags:  flags,
		Action: runChat,
	}
}

// chatSettings are the chat's validated flags.
type chatSettings struct {
	prompter planner.Prompter
	settings chat.Settings
	sampling llama.SamplerOptions
	json     bool
}

// parseChatFlags checks every flag before the model is loaded, so mistakes
// are reported at once.
func parseChatFlags(c *cli.Context) (chatSettings, error) {
	var s chatSettings
	mode, err := resolveMode(c, c.String("mode"))
	if err != nil {
		return s, err
	}
	format, err := resolveFormat(c, c.String("format"))
	if err != nil {
		return s, err
	}
	s.prompter = planner.Prompter{Mode: mode, Format: format, System: c.String("system")}
	s.settings = chat.Settings{MaxPlanTokens: c.Int("max-plan-tokens"), MaxTokens: c.Int("max-tokens")}
	if s.settings.MaxPlanTokens <= 0 || s.settings.MaxTokens <= 0 {
		return s, usagef("--max-plan-tokens and --max-tokens must be positive, got %d and %d", s.settings.MaxPlanTokens, s.settings.MaxTokens)
	}
	temp, topP := c.Float64("temperature"), c.Float64("top-p")
	if temp < 0 {
		return s, usagef("--temperature must be >= 0, got %g", temp)
	}
	if topP < 0 || topP > 1 {
		return s, usagef("--top-p must be in [0, 1], got %g", topP)
	}
	seed := uint32(c.Uint("seed"))
	if !c.IsSet("seed") {
		seed = rand.Uint32()
	}
	s.sampling = llama.SamplerOptions{Seed: seed, TopK: c.Int("top-k"), MinP: float32(c.Float64("min-p")),
		RepeatPenalty: float32(c.Float64("repeat-penalty"))}
	s.settings.Temperature, s.settings.TopP = temp, topP
	s.json = c.Bool("json")
	return s, nil
}

func runChat(c *cli.Context) error {
	set, err := parseChatFlags(c)
	if err != nil {
		return err
	}
	l, err := openModel(c)
	if err != nil {
		return err
	}
	defer l.Close()
	set.prompter.Chat = chatTemplater(l.Model)
	// One sequence: a chat answers one message at a time, and the whole
	// context of a sequence is the history's room.
	backend, err := l.Chat(set.sampling)
	if err != nil {
		return err
	}

	in, out, errw := c.App.Reader, c.App.Writer, c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	if isTerminal(in) {
		return chatInteractive(c, set, backend, out, errw)
	}
	return chatScript(c, set, backend, in, out, errw)
}

// chatInteractive runs the chat on a terminal: line editing and history
// with readline, colours when stdout is a terminal, Ctrl-C to stop a reply.
func chatInteractive(c *cli.Context, set chatSettings, b *engineBackend, out, errw io.Writer) error {
	outTTY := isTerminal(out)
	color := outTTY && os.Getenv("NO_COLOR") == ""
	// With stdout redirected, the prompt and line editing go to stderr and
	// the replies to stdout as plain text.
	ui := out
	if !outTTY {
		ui = errw
	}
	var r chat.Renderer
	text := &chat.TextRenderer{Out: out, Info: ui, Terminal: outTTY, Color: color}
	r = text
	if set.json {
		r = chat.JSONRenderer{Out: out, Info: ui}
	}
	sess, err := chat.New(b, r, chat.Options{Prompter: set.prompter, Settings: set.settings})
	if err != nil {
		return err
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:            chat.Prompt(color),
		HistoryFile:       chatHistoryFile(),
		HistorySearchFold: true,
		AutoComplete:      chatCompleter(),
		Stdout:            ui,
		Stderr:            errw,
	})
	if err != nil {
		return fmt.Errorf("chat: terminal: %w", err)
	}
	defer rl.Close()
	if outTTY {
		text.Banner(chatBanner(b, set))
	}

	// While a reply is generated the terminal is in cooked mode, so Ctrl-C
	// arrives as SIGINT: it cancels that reply only. At the prompt readline
	// has the terminal in raw mode and reports Ctrl-C itself.
	var mu sync.Mutex
	var cancelTurn context.CancelFunc
	handleSignals()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGTERM {
				rl.Close() // gives the terminal back
				os.Exit(exitInterrupted)
			}
			mu.Lock()
			if cancelTurn != nil {
				cancelTurn()
			}
			mu.Unlock()
		}
	}()

	var joiner chat.LineJoiner
	for {
		if joiner.Pending() {
			rl.SetPrompt(chat.ContinuationPrompt(color))
		} else {
			rl.SetPrompt(chat.Prompt(color))
		}
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			if joiner.Pending() {
				joiner.Flush() // Ctrl-C discards a message being assembled
				continue
			}
			if strings.TrimSpace(line) == "" {
				return nil
			}
			continue // Ctrl-C on a line being typed discards it
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("chat: reading the terminal: %w", err)
		}
		line, complete := joiner.Feed(line)
		if !complete {
			continue
		}
		ctx, cancel := context.WithCancel(c.Context)
		mu.Lock()
		cancelTurn = cancel
		mu.Unlock()
		quit, _ := sess.Handle(ctx, line)
		mu.Lock()
		cancelTurn = nil
		mu.Unlock()
		cancel()
		if quit {
			return nil
		}
	}
}

// chatScript reads one message or command per line from a pipe or file and
// prints the replies plainly, or as JSON lines.
func chatScript(c *cli.Context, set chatSettings, b *engineBackend, in io.Reader, out, errw io.Writer) error {
	var r chat.Renderer = &chat.TextRenderer{Out: out, Info: errw}
	if set.json {
		r = chat.JSONRenderer{Out: out, Info: errw}
	}
	sess, err := chat.New(b, r, chat.Options{Prompter: set.prompter, Settings: set.settings})
	if err != nil {
		return err
	}
	handleSignals()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	failed, firstFailed := 0, 0
	var firstErr error
	var joiner chat.LineJoiner
	n := 0
	for {
		more := sc.Scan()
		var line string
		var complete bool
		if more {
			n++
			line, complete = joiner.Feed(sc.Text())
		} else {
			line, complete = joiner.Flush()
		}
		if !complete {
			if more {
				continue
			}
			break
		}
		quit, err := sess.Handle(ctx, line)
		if ctx.Err() != nil {
			return cli.Exit(fmt.Sprintf("chat: interrupted at stdin line %d", n), exitInterrupted)
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstFailed, firstErr = n, err
			}
		}
		if quit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("chat: stdin line %d: %w", n+1, err)
	}
	if failed > 0 {
		return fmt.Errorf("chat: %d input line(s) failed; the first, stdin line %d: %w", failed, firstFailed, firstErr)
	}
	return nil
}

// chatBanner is the first line of an interactive chat: what is answering
// (model, adapter), how (mode, format), and the keys to know.
func chatBanner(b *engineBackend, set chatSettings) string {
	adapter := ""
	if b.Adapter != "" {
		adapter = " + " + filepath.Base(b.Adapter)
	}
	return fmt.Sprintf("codeplan chat: %s%s, mode %s, format %s, %d-token context. /help for commands, Ctrl-C stops a reply, Ctrl-D leaves.",
		filepath.Base(b.ModelPath()), adapter, set.prompter.Mode, set.prompter.Format, b.ContextTokens())
}

// engineBackend is chat's backend on the local model (local.ChatBackend).
type engineBackend = local.ChatBackend

// isTerminal reports whether r or w is a terminal.
func isTerminal(f any) bool {
	if cw, ok := f.(*checkedWriter); ok {
		f = cw.w
	}
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// chatHistoryFile is the readline history under the user cache folder, or
// "" (no persistent history) when that folder cannot be made.
func chatHistoryFile() string {
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "codeplan")
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		log.Warn().Err(err).Msg("chat: no persistent input history")
		return ""
	}
	return filepath.Join(dir, "chat_history")
}

// chatCompleter completes the slash commands and their arguments with Tab.
func chatCompleter() readline.AutoCompleter {
	var items []readline.PrefixCompleterInterface
	for _, name := range chat.CommandNames() {
		var args []readline.PrefixCompleterInterface
		switch name {
		case "/mode":
			for _, m := range planner.Modes() {
				args = append(args, readline.PcItem(string(m)))
			}
		case "/plan":
			args = append(args, readline.PcItem("on"), readline.PcItem("off"))
		}
		items = append(items, readline.PcItem(name, args...))
	}
	return readline.NewPrefixCompleter(items...)
}
