package chat

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/planner"
)

// commandHelp describes one slash command for /help.
type commandHelp struct {
	name, args, help string
}

// commandList is every command, in the order /help lists them; Command
// dispatches on the same names.
var commandList = []commandHelp{
	{"mode", "direct|nlplan|codeplan", "answer directly, or plan first in words or in code (no argument: show)"},
	{"plan", "on|off", "show or hide the plan (it is still generated and saved)"},
	{"system", "TEXT|-", "set the system message (- clears it; no argument: show)"},
	{"set", "NAME VALUE", "change temperature, top_p, max_tokens or max_plan_tokens (no argument: show all)"},
	{"reset", "", "forget the conversation"},
	{"save", "FILE.jsonl|FILE.md", "save the conversation, plans included, as JSON lines or Markdown"},
	{"help", "", "list the commands"},
	{"exit", "", "leave the chat (also /quit, Ctrl-D)"},
}

// aliases are extra names that are not listed in /help.
var aliases = map[string]string{"quit": "exit", "q": "exit", "?": "help", "clear": "reset"}

// CommandNames lists the slash commands, with their slash, for completion
// and help.
func CommandNames() []string {
	names := make([]string, len(commandList))
	for i, c := range commandList {
		names[i] = "/" + c.name
	}
	return names
}

// Command runs a slash command line such as "/mode direct". Its reply goes
// to the Renderer; err says what was wrong with it (also shown).
func (s *Session) Command(line string) (quit bool, err error) {
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	name = strings.ToLower(strings.TrimPrefix(name, "/"))
	arg = strings.TrimSpace(arg)
	if a, ok := aliases[name]; ok {
		name = a
	}
	switch name {
	case "mode":
		err = s.cmdMode(arg)
	case "plan":
		err = s.cmdPlan(arg)
	case "system":
		err = s.cmdSystem(arg)
	case "set":
		err = s.cmdSet(arg)
	case "reset":
		err = s.cmdReset(arg)
	case "save":
		err = s.cmdSave(arg)
	case "help":
		s.render.Message(Info, HelpText())
	case "exit":
		return true, nil
	default:
		err = fmt.Errorf("unknown command /%s%s; commands: %s (/help explains them; start a message with // to send a literal /)",
			name, suggest(name), strings.Join(CommandNames(), " "))
	}
	if err != nil {
		s.render.Message(Error, err.Error())
	}
	return quit, err
}

// suggest returns " (did you mean /x?)" when name is a prefix of exactly one
// command or one edit away from one, else "".
func suggest(name string) string {
	var hits []string
	for _, c := range commandList {
		if (name != "" && strings.HasPrefix(c.name, name)) || editDistance(c.name, name) == 1 {
			hits = append(hits, c.name)
		}
	}
	if len(hits) != 1 {
		return ""
	}
	return " (did you mean /" + hits[0] + "?)"
}

// editDistance is the Levenshtein distance of two short ASCII words.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (s *Session) cmdMode(arg string) error {
	if arg == "" {
		s.render.Message(Info, "mode: "+string(s.prompter.Mode))
		return nil
	}
	m, err := planner.ParseMode(arg)
	if err != nil {
		return fmt.Errorf("/mode %s: unknown mode; use /mode direct, /mode nlplan or /mode codeplan", arg)
	}
	s.prompter.Mode = m
	s.render.Message(Info, "mode: "+string(m))
	return nil
}

func (s *Session) cmdPlan(arg string) error {
	switch strings.ToLower(arg) {
	case "":
	case "on", "show":
		s.showPlan = true
	case "off", "hide":
		s.showPlan = false
	default:
		return fmt.Errorf("/plan %s: use /plan on or /plan off", arg)
	}
	state := "shown"
	if !s.showPlan {
		state = "hidden (still generated and saved)"
	}
	if !s.prompter.Mode.HasPlan() {
		state += "; mode direct writes no plan"
	}
	s.render.Message(Info, "plan: "+state)
	return nil
}

func (s *Session) cmdSystem(arg string) error {
	switch arg {
	case "":
		if s.prompter.System == "" {
			s.render.Message(Info, "system message: (none)")
		} else {
			s.render.Message(Info, "system message: "+s.prompter.System)
		}
		return nil
	case "-":
		s.prompter.System = ""
		s.render.Message(Info, "system message cleared")
		return nil
	}
	s.prompter.System = arg
	s.render.Message(Info, "system message set; it applies from the next message on")
	return nil
}

// settingNames are the names /set accepts, in the order it lists them.
var settingNames = []string{"temperature", "top_p", "max_tokens", "max_plan_tokens"}

func (s *Session) cmdSet(arg string) error {
	name, value, _ := strings.Cut(arg, " ")
	name = strings.ReplaceAll(strings.ToLower(name), "-", "_")
	value = strings.TrimSpace(value)
	if name == "" {
		st := s.settings
		s.render.Message(Info, fmt.Sprintf("temperature %g, top_p %g, max_tokens %d, max_plan_tokens %d",
			st.Temperature, st.TopP, st.MaxTokens, st.MaxPlanTokens))
		return nil
	}
	if value == "" {
		return fmt.Errorf("/set %s needs a value, e.g. /set temperature 0.7", name)
	}
	next := s.settings
	switch name {
	case "temperature", "temp":
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 100 {
			return fmt.Errorf("/set temperature %s: want a number from 0 (greedy) to 100", value)
		}
		next.Temperature = v
	case "top_p":
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
			return fmt.Errorf("/set top_p %s: want a number in [0, 1]", value)
		}
		next.TopP = v
	case "max_tokens", "max_plan_tokens":
		v, err := strconv.Atoi(value)
		if err != nil || v <= 0 {
			return fmt.Errorf("/set %s %s: want a positive whole number of tokens", name, value)
		}
		if name == "max_tokens" {
			next.MaxTokens = v
		} else {
			next.MaxPlanTokens = v
		}
	default:
		return fmt.Errorf("/set %s: unknown setting; settings: %s", name, strings.Join(settingNames, ", "))
	}
	s.settings = next
	s.render.Message(Info, fmt.Sprintf("%s = %s", name, value))
	return nil
}

func (s *Session) cmdReset(arg string) error {
	if arg != "" {
		return fmt.Errorf("/reset takes no argument, got %q", arg)
	}
	n := len(s.log)
	s.log, s.first, s.turns, s.trimNoted = nil, 0, 0, false
	s.render.Message(Info, fmt.Sprintf("conversation cleared (%s forgotten)", plural(n, "1 turn", "%d turns")))
	return nil
}

func (s *Session) cmdSave(arg string) error {
	if arg == "" {
		return errors.New("/save needs a file name: /save chat.jsonl or /save chat.md")
	}
	if err := SaveFile(arg, s.log); err != nil {
		return err
	}
	s.render.Message(Info, fmt.Sprintf("saved %s to %s", plural(len(s.log), "1 turn", "%d turns"), arg))
	return nil
}

// HelpText describes the slash commands and keys.
func HelpText() string {
	var b strings.Builder
	b.WriteString("Type a message to get a plan and an answer. Commands:\n")
	for _, c := range commandList {
		fmt.Fprintf(&b, "  %-30s %s\n", strings.TrimSpace("/"+c.name+" "+c.args), c.help)
	}
	b.WriteString("Start a message with // to send a literal /. Ctrl-C stops a reply; Ctrl-C on an empty line or Ctrl-D leaves.")
	return b.String()
}
