package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Flags are read wherever they stand; what is left is positional, in
// order; "--" ends the flags; mistakes are usage errors, -h is help.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		// want: config, json, n, the positional arguments; or err.
		config string
		json   bool
		n      int
		pos    []string
		err    string
	}{
		{args: nil, pos: []string{}},
		{args: []string{"-config", "c.json", "list.csv"}, config: "c.json", pos: []string{"list.csv"}},
		// The issue: a flag after the positional argument was ignored.
		{args: []string{"list.csv", "-config", "c.json"}, config: "c.json", pos: []string{"list.csv"}},
		{args: []string{"a", "-json", "b", "--config=x", "c", "-n", "3"}, config: "x", json: true, n: 3, pos: []string{"a", "b", "c"}},
		{args: []string{"-json=false", "a", "-config=", "b"}, pos: []string{"a", "b"}},
		// A value is the next argument, even one beginning with "-".
		{args: []string{"-config", "-odd-name", "a"}, config: "-odd-name", pos: []string{"a"}},
		// A boolean flag takes no value: "a" stays positional.
		{args: []string{"-json", "a"}, json: true, pos: []string{"a"}},
		// "--" ends the flags; "-" is positional.
		{args: []string{"-n", "1", "--", "-json", "b"}, n: 1, pos: []string{"-json", "b"}},
		{args: []string{"-", "-json"}, json: true, pos: []string{"-"}},
		{args: []string{"a", "--", "--"}, pos: []string{"a", "--"}},
		// Mistakes, wherever they stand.
		{args: []string{"a", "-nosuch"}, err: "usage: flag provided but not defined: -nosuch"},
		{args: []string{"a", "-config"}, err: "usage: flag needs an argument: -config"},
		{args: []string{"-n", "many", "a"}, err: `usage: invalid value "many" for flag -n`},
		{args: []string{"a", "-h"}, err: flag.ErrHelp.Error()},
		{args: []string{"-help"}, err: flag.ErrHelp.Error()},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			fs := NewFlagSet("test", "test [-config F] [-json] [-n N] ARGS...", &out)
			config := fs.String("config", "", "config")
			asJSON := fs.Bool("json", false, "JSON")
			n := fs.Int("n", 0, "count")
			err := Parse(fs, tc.args)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if tc.err == flag.ErrHelp.Error() {
					if !errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrUsage) {
						t.Errorf("-h: %v is not flag.ErrHelp alone", err)
					}
				} else if !errors.Is(err, ErrUsage) {
					t.Errorf("%v is not a usage error", err)
				}
				if !strings.Contains(out.String(), "usage: test [-config F]") {
					t.Errorf("no usage printed:\n%s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *config != tc.config || *asJSON != tc.json || *n != tc.n || !slices.Equal(fs.Args(), tc.pos) {
				t.Errorf("config %q json %v n %d args %q; want %q %v %d %q", *config, *asJSON, *n, fs.Args(), tc.config, tc.json, tc.n, tc.pos)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{fmt.Errorf("wrapped: %w", flag.ErrHelp), 0},
		{ErrUsage, 2},
		{fmt.Errorf("%w: -centre is required", ErrUsage), 2},
		{errors.New("no such centre: x"), 1},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestIsHelpIsVersion(t *testing.T) {
	for _, a := range []string{"-h", "-help", "--help", "help"} {
		if !IsHelp(a) || IsVersion(a) {
			t.Errorf("%q: help %v, version %v", a, IsHelp(a), IsVersion(a))
		}
	}
	for _, a := range []string{"-version", "--version", "version"} {
		if !IsVersion(a) || IsHelp(a) {
			t.Errorf("%q: help %v, version %v", a, IsHelp(a), IsVersion(a))
		}
	}
	for _, a := range []string{"run", "-v", "status", ""} {
		if IsHelp(a) || IsVersion(a) {
			t.Errorf("%q taken for help or version", a)
		}
	}
}
