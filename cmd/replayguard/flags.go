package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errUsage ends a command that was called wrongly: its message is printed
// already; the exit status is 2.
var errUsage = errors.New("usage")

// errHelp ends a command whose usage was asked for with -h or --help and
// printed on stdout; the exit status is 0.
var errHelp = errors.New("help")

// cli is one subcommand's command line: its flags and the usage printed
// by --help.
type cli struct {
	name string
	// synopsis is the usage line after "Usage: replayguard ".
	synopsis string
	// about is the text printed between the synopsis and the flags.
	about string
	fs    *flag.FlagSet
	// groups lists the flags under headings; nil lists them all in one.
	groups []flagGroup
	// interspersed lets flags follow positional arguments (a URL), as in
	// curl.
	interspersed bool
	stderr       io.Writer
}

// flagGroup is a heading of a command's usage and the flags under it.
type flagGroup struct {
	title string
	names []string
}

func newCLI(name, synopsis, about string, stderr io.Writer) *cli {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse reports its errors to the caller, which prints them with a
	// pointer to --help; the flag package prints nothing itself.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cli{name: name, synopsis: synopsis, about: about, fs: fs, stderr: stderr}
}

// parse parses args. --help or -h prints the usage on stdout and returns
// errHelp; an undefined flag or a bad value prints the error on stderr
// and returns errUsage.
func (c *cli) parse(args []string, stdout io.Writer) error {
	if c.interspersed {
		args = reorderFlags(args, c.fs)
	}
	err := c.fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		c.usage(stdout)
		return errHelp
	}
	return c.fail("%v", err)
}

// positional checks the number of positional arguments, between least
// and most; what names them in the message.
func (c *cli) positional(least, most int, what string) error {
	n := c.fs.NArg()
	switch {
	case n > most && most == 0:
		return c.fail("unexpected argument %q", c.fs.Arg(0))
	case n > most:
		return c.fail("unexpected argument %q after %s", c.fs.Arg(most), what)
	case n < least:
		return c.fail("want %s", what)
	}
	return nil
}

// fail prints a usage error and a pointer to --help on stderr and returns
// errUsage.
func (c *cli) fail(format string, args ...any) error {
	fmt.Fprintf(c.stderr, "replayguard %s: %s\nRun 'replayguard %s --help' for usage.\n", c.name, fmt.Sprintf(format, args...), c.name)
	return errUsage
}

// usage prints the synopsis, the text about the command and its flags.
func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: replayguard %s\n", c.synopsis)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.about, "\n"))
	}
	if c.groups == nil {
		var names []string
		c.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if len(names) > 0 {
			fmt.Fprintln(w, "\nFlags:")
			c.printFlags(w, names)
		}
		return
	}
	for _, g := range c.groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		c.printFlags(w, g.names)
	}
}

func (c *cli) printFlags(w io.Writer, names []string) {
	for _, name := range names {
		f := c.fs.Lookup(name)
		if f == nil {
			continue
		}
		arg, text := flag.UnquoteUsage(f)
		dashes := "--"
		if len(name) == 1 {
			dashes = "-"
		}
		line := "  " + dashes + name
		if arg != "" {
			line += " " + arg
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			text += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, text)
	}
}

// reorderFlags moves the flags of args before its positional arguments,
// so that flags may follow a URL as in curl. Everything after "--" is
// positional.
func reorderFlags(args []string, fs *flag.FlagSet) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
}
