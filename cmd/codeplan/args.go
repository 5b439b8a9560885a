package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed rewrites args so that a command's positional arguments may
// come before its flags ("codeplan extract MODEL --input x"): urfave/cli v2
// stops parsing flags at the first positional argument, but the project's
// flag vocabulary (README, "Command-line conventions") makes
// MODEL the first argument of every command. Positionals are moved after
// the flags; everything after "--" is left alone. Global flags (-q,
// --log-level, --log-format) may also follow the command name: they are
// moved before it, where urfave/cli looks for them, unless the command
// defines a flag of the same name.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global flags before the command name.
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		out = append(out, args[i])
		if takesValue(app.Flags, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	cmds := app.Commands
	var cmd *cli.Command
	var names []string
	for i < len(args) {
		c := findCommand(cmds, args[i])
		if c == nil {
			break
		}
		cmd = c
		names = append(names, args[i])
		i++
		cmds = c.Subcommands
	}
	if cmd == nil {
		return append(out, args[i:]...)
	}
	var flags, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if bareOptionalFlag(cmd, a) && (i+1 == len(args) || (strings.HasPrefix(args[i+1], "-") && args[i+1] != "-")) {
			flags = append(flags, a+"=true")
			continue
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			dst, set := &flags, cmd.Flags
			if !definesFlag(cmd.Flags, a) && definesFlag(app.Flags, a) {
				dst, set = &out, app.Flags
			}
			*dst = append(*dst, a)
			if takesValue(set, a) && i+1 < len(args) {
				i++
				*dst = append(*dst, args[i])
			}
			continue
		}
		positional = append(positional, a)
	}
	out = append(out, names...)
	out = append(out, flags...)
	return append(out, positional...)
}

// bareOptionalFlag reports whether arg is finetune's --lora, which takes a
// PATH (the adapter to continue) but may also stand alone, as the switch it
// used to be ("train a new adapter"): alone, it is passed on as --lora=true.
func bareOptionalFlag(cmd *cli.Command, arg string) bool {
	return cmd.Name == "finetune" && (arg == "--lora" || arg == "-lora")
}

// definesFlag reports whether arg ("--log-level", "-q=true") names one of flags.
func definesFlag(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// takesValue reports whether flag arg (e.g. "--input" or "-o") consumes the
// next argument: every flag but booleans, unless written as --flag=value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			switch f.(type) {
			case *cli.BoolFlag:
				return false
			}
			return true
		}
	}
	return false
}
