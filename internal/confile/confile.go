// Package confile reads the daemons' configuration files. It owns their
// format and its errors, not what the keys mean (daemon/config and
// portal/config own that):
//
//   - TOML (github.com/pelletier/go-toml/v2), the format an installer edits,
//     with every key documented in the installed example; unknown keys are
//     refused.
//   - The JSON files of earlier versions are still read (by their ".json"
//     name), strictly, and Migrate writes one as TOML.
//   - Every error names the file, the line and the key path, and says the
//     type wanted in words ("want a whole number"), never in Go's.
//   - Secrets may live in files of their own, referenced by path
//     (ReadSecret): such a file must not be readable or writable by every
//     user, so a copied config cannot leak them.
package confile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"kiumtap/internal/strictjson"
)

// ErrConfig matches (errors.Is) every error of reading a configuration
// file: the daemons exit with status 78 (EX_CONFIG, sysexits.h) for it,
// and their systemd units do not restart them for it
// (RestartPreventExitStatus=78): a mistake in the file stays one until a
// technician fixes it, and a restart loop would only bury it in the log.
var ErrConfig = errors.New("configuration error")

// configErr marks an error of reading a configuration as ErrConfig.
type configErr struct{ error }

func (e configErr) Unwrap() error        { return e.error }
func (e configErr) Is(target error) bool { return target == ErrConfig }

// Mark marks err, an error of reading or checking a configuration, as
// ErrConfig; nil stays nil.
func Mark(err error) error {
	if err == nil || errors.Is(err, ErrConfig) {
		return err
	}
	return configErr{err}
}

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int // 0: not known
	Key  string
	Msg  string
}

// Is makes every Error an ErrConfig.
func (e *Error) Is(target error) bool { return target == ErrConfig }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// MaxSize bounds a configuration file.
const MaxSize = 1 << 20

// Load reads the file at path into v (a pointer to a struct with toml and
// json tags): TOML, or JSON when the name ends in ".json".
func Load(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Mark(fmt.Errorf("configuration: %w", err))
	}
	return Parse(path, raw, v)
}

// Parse is Load of raw, read from the file named path.
func Parse(path string, raw []byte, v any) error {
	if len(raw) > MaxSize {
		return &Error{File: path, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", len(raw), MaxSize)}
	}
	if strings.HasSuffix(path, ".json") {
		if err := strictjson.Decode(raw, MaxSize, path, v); err != nil {
			return Mark(err)
		}
		return nil
	}
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs []error
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			errs = append(errs, &Error{File: path, Line: line, Key: key,
				Msg: "no such key (a typo? the installed example lists every key): " + known(reflect.TypeOf(v), de.Key()[:len(de.Key())-1])})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		return &Error{File: path, Line: line, Key: key, Msg: explain(strings.TrimPrefix(de.Error(), "toml: "), reflect.TypeOf(v), de.Key())}
	}
	return &Error{File: path, Msg: err.Error()}
}

var mismatch = regexp.MustCompile(`^cannot decode TOML (\w+) into `)

// explain words a decoding message: a type mismatch says what the key
// takes, in words.
func explain(msg string, t reflect.Type, key []string) string {
	if m := mismatch.FindStringSubmatch(msg); m != nil {
		if ft := fieldType(t, key); ft != nil {
			return fmt.Sprintf("want %s, not a TOML %s", words(ft), m[1])
		}
		return fmt.Sprintf("a TOML %s is not what this key takes", m[1])
	}
	return msg
}

// words is strictjson's, but for TOML: tables rather than objects.
func words(t reflect.Type) string {
	w := strictjson.Words(t)
	switch w {
	case "an object {...}":
		return "a table"
	case "a list [...]":
		return "a list [ ... ]"
	case `a string in quotes`:
		return `a string in quotes ("…")`
	}
	return w
}

// fieldType follows a key path through struct fields (by their toml tag)
// and maps; nil when it leaves them.
func fieldType(t reflect.Type, key []string) reflect.Type {
	for _, k := range key {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := structField(t, k)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
	}
	return t
}

func structField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" {
			name, _, _ = strings.Cut(f.Tag.Get("json"), ",")
		}
		if name == key || (name == "" && strings.EqualFold(f.Name, key)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// known lists the keys of the table at path, for an unknown key's message.
func known(t reflect.Type, path []string) string {
	t = fieldType(t, path)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return "this table takes any key"
	}
	var names []string
	seen := map[string]bool{}
	for _, k := range Keys(t, "") {
		k, _, _ = strings.Cut(k, ".")
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
	}
	where := "the top level"
	if len(path) > 0 {
		where = "[" + strings.Join(path, ".") + "]"
	}
	return where + " takes " + strings.Join(names, ", ")
}

// Keys lists every key path of a configuration struct type by its toml
// tags ("mqtt.broker"); a map's keys are free, so a map is one key.
func Keys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name, _, _ = strings.Cut(f.Tag.Get("json"), ",")
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !isLeaf(ft) {
			out = append(out, Keys(ft, path)...)
			continue
		}
		out = append(out, path)
	}
	return out
}

// isLeaf reports whether a struct type is a value (it decodes itself from
// text), not a table.
func isLeaf(t reflect.Type) bool {
	_, ok := reflect.New(t).Interface().(interface{ UnmarshalText([]byte) error })
	return ok
}

// ExampleKeys lists the keys an example file documents: every "key =" line,
// commented out ("# key = …") or not, under its table header ("[mqtt]" or
// "# [mqtt]").
func ExampleKeys(raw []byte) []string {
	header := regexp.MustCompile(`^#?\s*\[([a-z0-9_.]+)\]\s*$`)
	key := regexp.MustCompile(`^#?\s*([a-z0-9_]+)\s*=`)
	table := ""
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if m := header.FindStringSubmatch(l); m != nil {
			table = m[1]
			continue
		}
		if m := key.FindStringSubmatch(l); m != nil {
			if table != "" {
				out = append(out, table+"."+m[1])
			} else {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// Problem is a value the configuration's own checks refuse (after
// decoding): its key path and what is wrong.
type Problem struct{ Key, Msg string }

// Problems turns a configuration's refused values into errors naming the
// file and, where the key is written, its line.
func Problems(path string, raw []byte, ps []Problem) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = &Error{File: path, Line: LineOf(path, raw, p.Key), Key: p.Key, Msg: p.Msg}
	}
	return errors.Join(errs...)
}

// LineOf returns the line where a TOML file sets a key path ("mqtt.broker"),
// else the line of its table's header, else 0. A JSON file: the line where
// the key's last part appears first.
func LineOf(path string, raw []byte, key string) int {
	parts := strings.Split(key, ".")
	if strings.HasSuffix(path, ".json") {
		if i := bytes.Index(raw, []byte(`"`+parts[len(parts)-1]+`"`)); i >= 0 {
			return bytes.Count(raw[:i], []byte("\n")) + 1
		}
		return 0
	}
	table, name := strings.Join(parts[:len(parts)-1], "."), parts[len(parts)-1]
	header := regexp.MustCompile(`^\s*\[([a-z0-9_.]+)\]\s*(#.*)?$`)
	set := regexp.MustCompile(`^\s*([a-z0-9_]+)\s*=`)
	cur, headerLine := "", 0
	for n, l := range strings.Split(string(raw), "\n") {
		if m := header.FindStringSubmatch(l); m != nil {
			cur = m[1]
			if cur == table {
				headerLine = n + 1
			}
			continue
		}
		if m := set.FindStringSubmatch(l); m != nil && cur == table && m[1] == name {
			return n + 1
		}
	}
	return headerLine
}

// ReadSecret reads a secret from a file of its own (a password, a key),
// trimmed of surrounding space. The file must be a regular file that every
// user can neither read nor write (at most mode 0640), so that the secret
// stays with its owner and group. key names the configuration key in
// errors.
func ReadSecret(configFile, key, path string) (string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &Error{File: configFile, Key: key, Msg: fmt.Sprintf("%s does not exist: write the secret in it (owner root, group of the daemon's user, mode 0640), or give it inline with %s", path, strings.TrimSuffix(key, "_file"))}
	}
	if err != nil {
		return "", &Error{File: configFile, Key: key, Msg: fmt.Sprintf("the secret file: %v", err)}
	}
	if !fi.Mode().IsRegular() {
		return "", &Error{File: configFile, Key: key, Msg: path + " is not a regular file"}
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return "", &Error{File: configFile, Key: key, Msg: fmt.Sprintf("%s has mode %04o: a secret file must not be readable by every user nor writable by its group; chmod 0640 %s (owner root, group of the daemon's user)", path, perm, path)}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", &Error{File: configFile, Key: key, Msg: fmt.Sprintf("the secret file: %v", err)}
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "", &Error{File: configFile, Key: key, Msg: path + " is empty"}
	}
	return s, nil
}

// Migrate reads a JSON configuration of an earlier version into v and
// returns it as TOML, for `kiumtapd -migrate-config OLD.json > NEW.toml`.
func Migrate(path string, v any) ([]byte, error) {
	if filepath.Ext(path) != ".json" {
		return nil, fmt.Errorf("%s: migrate reads a JSON configuration (*.json)", path)
	}
	if err := Load(path, v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Migrated from %s. The installed example documents every key.\n\n", filepath.Base(path))
	enc := toml.NewEncoder(&b)
	enc.SetIndentTables(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Duration is a time.Duration written as "60s" or "72h".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 60s or 72h", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Log is the [log] table both daemons take.
type Log struct {
	// Format "text" (default; journald adds the time and unit) or "json";
	// Level "debug", "info" (default), "warn" or "error".
	Format string `json:"format" toml:"format,omitempty"`
	Level  string `json:"level" toml:"level,omitempty"`
}

// LogLevels are the log.level values.
var LogLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// Check sets the defaults and names a wrong value.
func (l *Log) Check() []Problem {
	if l.Format == "" {
		l.Format = "text"
	}
	if l.Level == "" {
		l.Level = "info"
	}
	var ps []Problem
	if l.Format != "text" && l.Format != "json" {
		ps = append(ps, Problem{"log.format", fmt.Sprintf("%q is not text or json", l.Format)})
	}
	if _, ok := LogLevels[l.Level]; !ok {
		ps = append(ps, Problem{"log.level", fmt.Sprintf("%q is not debug, info, warn or error", l.Level)})
	}
	return ps
}

// Logger is a daemon's logger as l configures it, writing to w. Under
// systemd (JOURNAL_STREAM set: standard error goes to the journal) the text
// format leaves the time out, as the journal stamps every line itself.
func (l Log) Logger(w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: LogLevels[l.Level]}
	if os.Getenv("JOURNAL_STREAM") != "" && l.Format != "json" {
		o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Secret is a secret a configuration takes either inline (Into) or from a
// file of its own (File, its key named Key, e.g. "mqtt.password_file").
type Secret struct {
	Key  string
	File string
	Into *string
}

// ReadSecrets reads each secret given as a file into its inline value;
// both given is an error (keep one).
func ReadSecrets(configFile string, secrets ...Secret) error {
	var errs []error
	for _, s := range secrets {
		if s.File == "" {
			continue
		}
		if *s.Into != "" {
			errs = append(errs, &Error{File: configFile, Key: s.Key, Msg: "set together with " + strings.TrimSuffix(s.Key, "_file") + ": keep one"})
			continue
		}
		v, err := ReadSecret(configFile, s.Key, s.File)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*s.Into = v
	}
	return errors.Join(errs...)
}

// Brokers checks a list of MQTT broker URLs, set under key: each tcp://
// or ssl://, none twice, and not both kinds (over tcp:// a daemon would
// send in the clear what it sends the others over TLS). It tells each
// problem to bad and returns how many of the URLs are ssl://.
func Brokers(key string, urls []string, bad func(key, format string, args ...any)) (tls int) {
	seen := map[string]bool{}
	for _, u := range urls {
		switch {
		case !strings.HasPrefix(u, "tcp://") && !strings.HasPrefix(u, "ssl://"):
			bad(key, "%q: want tcp://host:port or ssl://host:port", u)
		case seen[u]:
			bad(key, "%q is listed twice: list each broker once", u)
		}
		seen[u] = true
		if strings.HasPrefix(u, "ssl://") {
			tls++
		}
	}
	if tls > 0 && tls < len(urls) {
		bad(key, "mixes tcp:// and ssl:// brokers: list brokers of one kind (over tcp:// what goes to the others over TLS would go in the clear)")
	}
	return tls
}
