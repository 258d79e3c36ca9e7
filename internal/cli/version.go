package cli

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Version is the build's version: set at build time with
// -ldflags "-X kiumtap/internal/cli.Version=…" (make build stamps it from
// git describe); otherwise the module's VCS revision when the binary was
// built from a checkout, or "dev".
var Version = ""

// BuildVersion returns Version, or what the Go toolchain recorded of the
// checkout the binary was built from.
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}

// PrintVersion writes "<name> <version> (<go version>)".
func PrintVersion(w io.Writer, name string) {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.GoVersion
	}
	fmt.Fprintf(w, "%s %s (%s)\n", name, BuildVersion(), v)
}
