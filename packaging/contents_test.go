package packaging

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// packageSpec is what a package must hold.
type packageSpec struct {
	name, arch string
	machine    elf.Machine
	goarch     string
	goarm      string // "" but for armhf
	commands   []string
	// files are the package's files and directories (but for plain parent
	// directories, which must be drwxr-xr-x) with their modes as dpkg-deb -c
	// prints them; all are root's.
	files map[string]string
	// same are installed files that must be the repository's file as is.
	same      map[string]string
	conffiles []string
}

func terminalSpec(arch string, machine elf.Machine, goarch, goarm string) packageSpec {
	return packageSpec{
		name: "kiumtap", arch: arch, machine: machine, goarch: goarch, goarm: goarm,
		commands: []string{"kiumtapd", "kiumctl"},
		files: map[string]string{
			"/usr/bin/kiumtapd":                          "-rwxr-xr-x",
			"/usr/bin/kiumctl":                           "-rwxr-xr-x",
			"/usr/lib/systemd/system/kiumtapd.service":   "-rw-r--r--",
			"/usr/lib/udev/rules.d/60-kiumtap.rules":     "-rw-r--r--",
			"/etc/kiumtap/":                              "drwxr-x---",
			"/etc/kiumtap/kiumtapd.toml":                 "-rw-r-----",
			"/usr/share/doc/kiumtap/README.md":           "-rw-r--r--",
			"/usr/share/doc/kiumtap/copyright":           "-rw-r--r--",
			"/usr/share/doc/kiumtap/changelog.Debian.gz": "-rw-r--r--",
			"/usr/share/man/man1/kiumtapd.1.gz":          "-rw-r--r--",
			"/usr/share/man/man1/kiumctl.1.gz":           "-rw-r--r--",
			"/usr/share/lintian/overrides/kiumtap":       "-rw-r--r--",
		},
		same: map[string]string{
			"/usr/lib/systemd/system/kiumtapd.service": "deploy/systemd/kiumtapd.service",
			"/etc/kiumtap/kiumtapd.toml":               "deploy/config/kiumtapd.toml",
			"/usr/lib/udev/rules.d/60-kiumtap.rules":   "packaging/kiumtap/60-kiumtap.rules",
			"/usr/share/doc/kiumtap/README.md":         "README.md",
			"/usr/share/doc/kiumtap/copyright":         "packaging/copyright",
			"/usr/share/lintian/overrides/kiumtap":     "packaging/kiumtap/lintian-overrides",
		},
		conffiles: []string{"/etc/kiumtap/kiumtapd.toml"},
	}
}

func bridgeSpec(arch string, machine elf.Machine) packageSpec {
	doc := "/usr/share/doc/kiumbridge/"
	return packageSpec{
		name: "kiumbridge", arch: arch, machine: machine, goarch: arch,
		commands: []string{"kiumbridge"},
		files: map[string]string{
			"/usr/bin/kiumbridge":                        "-rwxr-xr-x",
			"/usr/lib/systemd/system/kiumbridge.service": "-rw-r--r--",
			"/etc/kiumbridge/":                           "drwxr-x---",
			"/etc/kiumbridge/kiumbridge.toml":            "-rw-r-----",
			doc + "README.md":                            "-rw-r--r--",
			doc + "protocol.md":                          "-rw-r--r--",
			doc + "copyright":                            "-rw-r--r--",
			doc + "changelog.Debian.gz":                  "-rw-r--r--",
			doc + "examples/mosquitto/mosquitto.conf":    "-rw-r--r--",
			doc + "examples/mosquitto/acl":               "-rw-r--r--",
			doc + "examples/mosquitto/README.md":         "-rw-r--r--",
			doc + "examples/sources/mangwon1.json":       "-rw-r--r--",
			"/usr/share/man/man1/kiumbridge.1.gz":        "-rw-r--r--",
			"/usr/share/lintian/overrides/kiumbridge":    "-rw-r--r--",
		},
		same: map[string]string{
			"/usr/lib/systemd/system/kiumbridge.service": "deploy/systemd/kiumbridge.service",
			"/etc/kiumbridge/kiumbridge.toml":            "deploy/config/kiumbridge.toml",
			doc + "examples/mosquitto/mosquitto.conf":    "deploy/mosquitto/mosquitto.conf",
			doc + "examples/mosquitto/acl":               "deploy/mosquitto/acl",
			doc + "examples/mosquitto/README.md":         "deploy/mosquitto/README.md",
			doc + "examples/sources/mangwon1.json":       "docs/examples/mangwon1.json",
			doc + "README.md":                            "README.md",
			doc + "protocol.md":                          "docs/protocol.md",
			doc + "copyright":                            "packaging/copyright",
			"/usr/share/lintian/overrides/kiumbridge":    "packaging/kiumbridge/lintian-overrides",
		},
		conffiles: []string{"/etc/kiumbridge/kiumbridge.toml"},
	}
}

var specs = []packageSpec{
	terminalSpec("armhf", elf.EM_ARM, "arm", "6"),
	terminalSpec("arm64", elf.EM_AARCH64, "arm64", ""),
	terminalSpec("amd64", elf.EM_X86_64, "amd64", ""),
	bridgeSpec("amd64", elf.EM_X86_64),
	bridgeSpec("arm64", elf.EM_AARCH64),
}

// Each package holds what it must and nothing else, owned by root, with the
// configuration as a conffile readable by the daemon's group only (set at
// install), the binaries built as the packages promise.
func TestContents(t *testing.T) {
	t.Parallel()
	dist, _ := dists(t)
	root := repoRoot(t)
	for _, spec := range specs {
		t.Run(spec.name+"_"+spec.arch, func(t *testing.T) {
			t.Parallel()
			path := deb(t, dist, spec.name, spec.arch)

			fields := run(t, "dpkg-deb", "--field", path, "Package", "Version", "Architecture", "Depends")
			want := "Package: " + spec.name + "\nVersion: " + testDebVersion + "-1\nArchitecture: " + spec.arch + "\nDepends: adduser\n"
			if fields != want {
				t.Errorf("control fields:\n%s\nwant:\n%s", fields, want)
			}

			// Files, owners and modes.
			listed := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", path)), "\n") {
				f := strings.Fields(line)
				if len(f) != 6 {
					t.Errorf("unexpected entry (a link?): %s", line)
					continue
				}
				mode, owner, name := f[0], f[1], strings.TrimPrefix(f[5], ".")
				if owner != "root/root" {
					t.Errorf("%s is %s's, want root/root (the scripts set other owners with dpkg-statoverride)", name, owner)
				}
				wantMode, ok := spec.files[name]
				switch {
				case ok:
					listed[name] = true
				case strings.HasSuffix(name, "/"):
					wantMode = "drwxr-xr-x"
				default:
					t.Errorf("unexpected file %s (%s)", name, mode)
					continue
				}
				if mode != wantMode {
					t.Errorf("%s has mode %s, want %s", name, mode, wantMode)
				}
			}
			for name := range spec.files {
				if !listed[name] {
					t.Errorf("%s is missing", name)
				}
			}

			conffiles := strings.Fields(run(t, "dpkg-deb", "--info", path, "conffiles"))
			if !slices.Equal(conffiles, spec.conffiles) {
				t.Errorf("conffiles %v, want %v", conffiles, spec.conffiles)
			}

			// The maintainer scripts: POSIX sh that parses.
			ctl := t.TempDir()
			run(t, "dpkg-deb", "--control", path, ctl)
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(ctl, s)
				if !isExecutable(p) {
					t.Errorf("%s: missing or not executable", s)
					continue
				}
				if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
					t.Errorf("%s does not parse: %v\n%s", s, err, out)
				}
			}

			data := t.TempDir()
			run(t, "dpkg-deb", "--extract", path, data)
			for inst, src := range spec.same {
				got, err := os.ReadFile(filepath.Join(data, inst))
				if err != nil {
					t.Error(err)
					continue
				}
				if want, err := os.ReadFile(filepath.Join(root, src)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s is not %s as it is in the repository (%v)", inst, src, err)
				}
			}
			licensed := copyrightFiles(t, filepath.Join(data, "usr/share/doc", spec.name, "copyright"))
			for _, c := range spec.commands {
				checkBinary(t, filepath.Join(data, "usr/bin", c), spec, licensed)
			}
		})
	}
}

// checkBinary checks a packaged binary: the package's CPU, static, stripped,
// built with the flags scripts/package.sh promises.
func checkBinary(t *testing.T, path string, spec packageSpec, licensed []string) {
	t.Helper()
	name := filepath.Base(path)
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	defer f.Close()
	if f.Machine != spec.machine {
		t.Errorf("%s is for %v, want %v", name, f.Machine, spec.machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not statically linked (CGO_ENABLED=0)", name)
		}
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("%s has a %s section: not stripped (-ldflags -s -w)", name, s)
		}
	}

	// -trimpath keeps -ldflags out of the build information: -s -w show
	// above, the version (-X) in the binary's data (TestInstall and
	// TestARMDemo run -version).
	if b, err := os.ReadFile(path); err != nil || !bytes.Contains(b, []byte(testVersion)) {
		t.Errorf("%s does not hold its version %s (-X kiumtap/internal/cli.Version) (%v)", name, testVersion, err)
	}

	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Errorf("%s: reading its build information: %v", name, err)
		return
	}
	if want := "kiumtap/cmd/" + name; bi.Path != want {
		t.Errorf("%s was built from %s, want %s", name, bi.Path, want)
	}
	// Every module linked in has its copyright and licence in the package.
	for _, d := range bi.Deps {
		if !slices.ContainsFunc(licensed, func(prefix string) bool { return strings.HasPrefix(d.Path+"/", prefix) }) {
			t.Errorf("%s links %s, which packaging/copyright does not list: add a Files: %s/* paragraph with its copyright and licence", name, d.Path, d.Path)
		}
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{
		"GOOS":        "linux",
		"GOARCH":      spec.goarch,
		"CGO_ENABLED": "0",
		"-trimpath":   "true",
	}
	if spec.goarm != "" {
		want["GOARM"] = spec.goarm
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("%s: built with %s=%q, want %q", name, k, settings[k], v)
		}
	}
}

// copyrightFiles returns the module path prefixes ("github.com/xuri/") that
// a machine-readable copyright file's Files: fields name.
func copyrightFiles(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Files:"); ok {
			for _, p := range strings.Fields(rest) {
				if m, ok := strings.CutSuffix(p, "/*"); ok {
					prefixes = append(prefixes, m+"/")
				}
			}
		}
	}
	return prefixes
}
