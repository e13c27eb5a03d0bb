package cmd

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags come after arguments, as people type them
// ("send file.bin --stun none", "recv ROOM --signal URL"): urfave/cli, like
// Go's flag package, stops reading a command's flags at its first
// argument. So the command's flags, each with its value, move before its
// arguments, which then follow a "--". A "--" typed on the command line
// ends the flags: what follows is an argument even if it starts with "-"
// (a file named "--stun"). A token that starts with "-" and names no flag
// of the command stays a flag, for urfave/cli to refuse (a usage error).
// Before the command, -v/--verbose belongs to the command: it moves after
// the command's name, so "p2pxfer -v recv ..." is verbose too.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	var verbose []string
	i := 1
	for ; i < len(args) && isFlagArg(args[i]); i++ {
		name, hasValue := flagArgName(args[i])
		if name == "v" || name == "verbose" {
			verbose = append(verbose, args[i])
			continue
		}
		out = append(out, args[i])
		if f := findFlag(app.Flags, name); f != nil && takesValue(f) && !hasValue && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	var c *cli.Command
	if i < len(args) {
		c = app.Command(args[i])
	}
	if c == nil || len(c.Subcommands) > 0 {
		// No command (help, a typo, none at all): nothing to reorder.
		return append(append(out, verbose...), args[i:]...)
	}
	out = append(out, args[i])
	out = append(out, verbose...)
	flags, positional := splitFlags(c.Flags, args[i+1:])
	out = append(out, flags...)
	if slices.ContainsFunc(flags, isHelpFlag) {
		// "recv ROOM --help": the command's help, not a help topic ROOM.
		return out
	}
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// isHelpFlag reports whether a asks for help (-h, --help).
func isHelpFlag(a string) bool {
	name, _ := flagArgName(a)
	return isFlagArg(a) && cli.HelpFlag != nil && slices.Contains(cli.HelpFlag.Names(), name)
}

// splitFlags separates a command's flags, with their values, from its
// arguments, keeping the order within each.
func splitFlags(defined []cli.Flag, args []string) (flags, positional []string) {
	for j := 0; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			return flags, append(positional, args[j+1:]...)
		}
		if !isFlagArg(a) {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name, hasValue := flagArgName(a)
		if f := findFlag(defined, name); f != nil && takesValue(f) && !hasValue && j+1 < len(args) {
			j++
			flags = append(flags, args[j])
		}
	}
	return flags, positional
}

// isFlagArg reports whether a looks like a flag: "-x", "--x", "--x=v";
// not "-" (an argument) nor "--" (the end of the flags).
func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// flagArgName is the name in a flag token, as Go's flag package reads it:
// one or two dashes, then the name up to an "=".
func flagArgName(a string) (name string, hasValue bool) {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, _, hasValue = strings.Cut(a, "=")
	return name, hasValue
}

// findFlag returns the flag of defined (or the help flag, which urfave/cli
// adds to every command) that has name among its names.
func findFlag(defined []cli.Flag, name string) cli.Flag {
	for _, f := range defined {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	if cli.HelpFlag != nil && slices.Contains(cli.HelpFlag.Names(), name) {
		return cli.HelpFlag
	}
	return nil
}

// takesValue reports whether f reads the next token as its value (every
// flag but a boolean one).
func takesValue(f cli.Flag) bool {
	if v, ok := f.(interface{ TakesValue() bool }); ok {
		return v.TakesValue()
	}
	return true
}
