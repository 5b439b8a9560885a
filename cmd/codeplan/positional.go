package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// anyArgs marks a command that takes any number of positional arguments.
const anyArgs = -1

// positionalLimits are the commands whose positional arguments differ from
// the rule in maxPositional: lists of files, or none at all.
var positionalLimits = map[string]int{
	"merge":   anyArgs, // SHARD.jsonl ...
	"report":  anyArgs, // EVAL_DIR ...
	"compare": anyArgs, // NAME=EVAL_DIR ...
	"info":    anyArgs, // MODEL.gguf|ADAPTER.gguf ...: each is described in turn
	"synth":   0,
	"tiny":    0, // model tiny
	"init":    0, // model init
	"random":  0, // model random
}

// maxPositional is how many positional arguments cmd takes: its entry in
// positionalLimits, else one (MODEL) when it documents an argument, else
// none.
func maxPositional(cmd *cli.Command) int {
	if n, ok := positionalLimits[cmd.Name]; ok {
		return n
	}
	if cmd.ArgsUsage != "" {
		return 1
	}
	return 0
}

// checkPositional refuses what a command would otherwise silently ignore:
// positional arguments beyond those it takes ("extract tiny extra"), and
// a MODEL argument that differs from --model. Commands with subcommands
// are checked by the subcommand (or by unknownCommand).
func checkPositional(c *cli.Context) error {
	cmd := c.Command
	if cmd == nil || hasSubcommands(cmd) {
		return nil
	}
	args := c.Args().Slice()
	name := commandPath(c)
	if max := maxPositional(cmd); max != anyArgs && len(args) > max {
		extra := args[max:]
		switch {
		case max == 0:
			return usagef("%s takes no positional arguments, got %s (see codeplan %s --help)", name, quoteList(extra), name)
		case len(extra) == 1:
			return usagef("%s: unexpected extra argument %q after %s %q: it takes one (%s); pass other inputs with their flags", name, extra[0], cmd.ArgsUsage, args[0], cmd.ArgsUsage)
		default:
			return usagef("%s: unexpected extra arguments %s after %s %q: it takes one (%s); pass other inputs with their flags", name, quoteList(extra), cmd.ArgsUsage, args[0], cmd.ArgsUsage)
		}
	}
	if hasFlag(c, "model") && c.IsSet("model") && len(args) > 0 && max1(cmd) {
		if m := c.String("model"); m != args[0] {
			return usagef("%s: the model is given twice, as the first argument %q and as --model %q: pass one", name, args[0], m)
		}
	}
	return nil
}

// commandPath is the command as typed, with its parents ("model tiny"),
// as error messages and flagRanges name it. A command can appear twice in
// the lineage (urfave/cli's context of a subcommand's parent); it is named
// once.
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command == nil || ctx.Command.Name == "" || (c.App != nil && ctx.Command.Name == c.App.Name) ||
			(len(names) > 0 && names[0] == ctx.Command.Name) {
			continue
		}
		names = append([]string{ctx.Command.Name}, names...)
	}
	if len(names) == 0 {
		return c.Command.Name
	}
	return strings.Join(names, " ")
}

// hasSubcommands reports whether cmd has subcommands of its own (urfave/cli
// adds a "help" subcommand to every command).
func hasSubcommands(cmd *cli.Command) bool {
	for _, s := range cmd.Subcommands {
		if s.Name != "help" {
			return true
		}
	}
	return false
}

// max1 reports whether cmd's first positional argument is its model (every
// command that takes MODEL.gguf; info's list of files counts too).
func max1(cmd *cli.Command) bool {
	return cmd.ArgsUsage != "" && strings.Contains(cmd.ArgsUsage, "MODEL")
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// unknownCommand is the action of the app and of every command with
// subcommands: with no argument it prints help, as before; with one it is
// a mistyped command name, a usage error (exit 2) that suggests the nearest
// command, where urfave/cli would print "No help topic" and exit 3.
func unknownCommand(cmds func() []*cli.Command, prefix string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if !c.Args().Present() {
			if prefix == "" {
				return cli.ShowAppHelp(c)
			}
			return cli.ShowSubcommandHelp(c)
		}
		return unknownCommandError(cmds(), prefix, c.Args().First())
	}
}

// unknownCommandError is the usage error for a command name that is none
// of cmds (under the parent command prefix, "" at the top), with the
// nearest name as a suggestion when one is close.
func unknownCommandError(cmds []*cli.Command, prefix, name string) error {
	var names []string
	for _, cmd := range cmds {
		if !cmd.Hidden {
			names = append(names, cmd.Names()...)
		}
	}
	msg := fmt.Sprintf("unknown command %q", strings.TrimSpace(prefix+" "+name))
	if s := nearest(name, names); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", strings.TrimSpace(prefix+" "+s))
	}
	return usagef("%s (%q lists the commands)", msg, strings.Join(strings.Fields("codeplan "+prefix+" --help"), " "))
}

// nearest returns the name closest to s by edit distance, or "" when none
// is close enough to be a plausible typo (more than a third of its letters
// off, and not a prefix).
func nearest(s string, names []string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		if n == "help" || n == "h" {
			continue
		}
		d := editDistance(strings.ToLower(s), n)
		if strings.HasPrefix(n, strings.ToLower(s)) && len(s) >= 2 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	if bestD > max(2, len(best)/3) {
		return ""
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance: insertions, deletions, substitutions and swaps of neighbours
// each cost 1, so "extrcat" is one step from "extract".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
