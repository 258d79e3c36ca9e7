package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"kiumtap/internal/confile"
)

// Parse parses fs's flags from args wherever they stand among the
// positional arguments, and leaves those, in order, in fs.Args(): Go's
// flag package stops at the first positional argument and silently takes
// every later "-flag" for one more argument, so that
// "kiumbridge roster push LIST.csv -config F" would push without reading
// -config. "--" ends the flags: what follows it is positional even when it
// begins with "-". A lone "-" is positional (standard input, by custom).
//
// A flag that takes a value takes the next argument ("-config F"), as the
// flag package does, unless the value is given with "=" ("-config=F").
//
// The error is flag.ErrHelp itself for -h or -help (help asked for is no
// failure: ExitCode gives 0), else one wrapping ErrUsage that says what
// was wrong (an unknown flag, a missing or bad value). fs should be
// ContinueOnError; its output gets the flag package's own message and
// fs.Usage, as usual.
func Parse(fs *flag.FlagSet, args []string) error {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(a[1:], "-") // -name or --name
		if strings.Contains(name, "=") {
			continue
		}
		// An unknown flag is left for fs.Parse to report; a boolean one
		// takes no value.
		if f := fs.Lookup(name); f != nil && !isBool(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	err := fs.Parse(flags)
	if err == nil {
		err = fs.Parse(append([]string{"--"}, pos...)) // fs.Args() = pos
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: %w", ErrUsage, err)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// ExitConfig is the exit status for a mistake in a configuration file
// (EX_CONFIG of sysexits.h): the units do not restart a daemon for it.
const ExitConfig = 78

// ExitCode is the exit status of a command that returned err: 0 for none,
// and for flag.ErrHelp (help asked for and printed); 2 for a usage error
// (ErrUsage); ExitConfig (78) for a configuration file's mistake
// (confile.ErrConfig); 1 for any other.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	case errors.Is(err, confile.ErrConfig):
		return ExitConfig
	}
	return 1
}

// IsHelp reports whether arg asks for help: -h, -help, --help or "help".
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help", "help":
		return true
	}
	return false
}

// IsVersion reports whether arg asks for the version: -version,
// --version or "version".
func IsVersion(arg string) bool {
	switch arg {
	case "-version", "--version", "version":
		return true
	}
	return false
}

// NewFlagSet is a ContinueOnError flag set writing to out whose usage
// (on -h, and after a flag error) is "usage: SYNOPSIS" and its flags.
func NewFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s\n", synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}
