// Package strictjson is the one way kiumtap decodes JSON from outside:
// protocol messages, roster files and sources, configuration files and
// requests to its local APIs. It owns the rules they share: a size limit,
// unknown fields refused, nothing after the value, and errors a person can
// act on, naming the key's path and line (bookings[3].window.end, line 12)
// and the types in words ("a time of day such as \"13:00\""), never Go's
// type names.
//
// Decoding is encoding/json's; only when it fails does the package walk
// the input again, keeping offsets, to say where and why. A good message
// costs nothing extra.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Error is a decoding error: where in the input and what is wrong.
type Error struct {
	What string // what was decoded: "roster file", "events", "config /etc/kiumtap/kiumtapd.json"
	Path string // the key's path, "" for the whole value
	Line int    // 1-based; 0 when not known
	Col  int
	Msg  string
	Err  error // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.What)
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Decode decodes raw, at most limit bytes (0: no limit), into v strictly.
// what names the input in errors.
func Decode(raw []byte, limit int, what string, v any) error {
	if limit > 0 && len(raw) > limit {
		return &Error{What: what, Msg: fmt.Sprintf("%d bytes, more than the %d allowed", len(raw), limit)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(raw, what, reflect.TypeOf(v), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		line, col := position(raw, dec.InputOffset())
		return &Error{What: what, Line: line, Col: col, Msg: "data after the JSON value: the input holds one value"}
	}
	return nil
}

// explain turns encoding/json's error into one that says where.
func explain(raw []byte, what string, t reflect.Type, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// Offset is just after the byte that broke the syntax.
		line, col := position(raw, syn.Offset-1)
		return &Error{What: what, Line: line, Col: col, Msg: fmt.Sprintf("not valid JSON (%s, column %d)", strings.TrimPrefix(syn.Error(), "invalid character "), col), Err: err}
	}
	if errors.Is(err, io.EOF) || len(bytes.TrimSpace(raw)) == 0 {
		return &Error{What: what, Msg: "empty: want a JSON value", Err: err}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		line, col := position(raw, int64(len(raw)))
		return &Error{What: what, Line: line, Col: col, Msg: "ends too early: a bracket or a quote is not closed", Err: err}
	}
	root, perr := parse(raw)
	if perr == nil {
		if e := locate(raw, root, t, ""); e != nil {
			e.What, e.Err = what, err
			return e
		}
	}
	return &Error{What: what, Msg: err.Error(), Err: err}
}

// position returns the 1-based line and column (in runes) of byte offset
// off.
func position(raw []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(raw)))
	before := raw[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len([]rune(string(before[bytes.LastIndexByte(before, '\n')+1:]))) + 1
	return line, col
}

// node is a JSON value with where it stands in the input.
type node struct {
	start, end int64 // offsets of the value's first and last+1 bytes
	delim      byte  // '{', '[' or 0 for a scalar
	keys       []string
	keyAt      []int64 // offset of each key
	kids       []*node // object values (parallel to keys) or list items
}

func parse(raw []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return parseValue(dec, raw)
}

// skip moves off past whitespace and the separators before a token.
func skip(raw []byte, off int64) int64 {
	for off < int64(len(raw)) && strings.IndexByte(" \t\r\n:,", raw[off]) >= 0 {
		off++
	}
	return off
}

func parseValue(dec *json.Decoder, raw []byte) (*node, error) {
	n := &node{start: skip(raw, dec.InputOffset())}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); ok {
		n.delim = byte(d)
		for dec.More() {
			if n.delim == '{' {
				at := skip(raw, dec.InputOffset())
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.keys, n.keyAt = append(n.keys, k.(string)), append(n.keyAt, at)
			}
			kid, err := parseValue(dec, raw)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, kid)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	}
	n.end = dec.InputOffset()
	return n, nil
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// locate walks the value against type t and returns the first place (an
// object's keys in order, list items in order) where it does not fit: an
// unknown field, or a value t refuses. nil when it fits.
func locate(raw []byte, n *node, t reflect.Type, path string) *Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := func(off int64, path, format string, a ...any) *Error {
		line, col := position(raw, off)
		return &Error{Path: path, Line: line, Col: col, Msg: fmt.Sprintf(format, a...)}
	}
	val := raw[n.start:n.end]
	if string(bytes.TrimSpace(val)) == "null" {
		return nil
	}
	if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		if err := json.Unmarshal(val, reflect.New(t).Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return at(n.start, path, "want %s, got %s", Words(t), te.Value)
			}
			return at(n.start, path, "%v (want %s)", err, Words(t))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.delim != '{' {
			return at(n.start, path, "want %s", Words(t))
		}
		fields := jsonFields(t)
		var known []string
		for _, f := range fields {
			known = append(known, f.name)
		}
		for i, k := range n.keys {
			// encoding/json prefers the exact name, then any case.
			j := slices.IndexFunc(fields, func(f field) bool { return f.name == k })
			if j < 0 {
				j = slices.IndexFunc(fields, func(f field) bool { return strings.EqualFold(f.name, k) })
			}
			if j < 0 {
				return at(n.keyAt[i], join(path, k), "unknown field: remove it or correct its spelling (known here: %s)", strings.Join(known, ", "))
			}
			if e := locate(raw, n.kids[i], fields[j].typ, join(path, fields[j].name)); e != nil {
				return e
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && n.delim == 0 { // []byte: base64
			break
		}
		if n.delim != '[' {
			return at(n.start, path, "want %s", Words(t))
		}
		for i, kid := range n.kids {
			if e := locate(raw, kid, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); e != nil {
				return e
			}
		}
		return nil
	case reflect.Map:
		if n.delim != '{' {
			return at(n.start, path, "want %s", Words(t))
		}
		for i, k := range n.keys {
			if e := locate(raw, n.kids[i], t.Elem(), fmt.Sprintf("%s[%q]", path, k)); e != nil {
				return e
			}
		}
		return nil
	case reflect.Interface:
		return nil
	}
	if err := json.Unmarshal(val, reflect.New(t).Interface()); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return at(n.start, path, "want %s, got %s", Words(t), te.Value)
		}
		return at(n.start, path, "%v (want %s)", err, Words(t))
	}
	return nil
}

type field struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the JSON fields of struct type t as encoding/json sees
// them: exported, not "-", embedded structs' fields inlined.
func jsonFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name, f.Type})
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// Words says what a type takes, for people: "a whole number", "a date
// such as \"2026-11-23\"". A type can say it itself with a method
// JSONWords() string.
func Words(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if w, ok := reflect.New(t).Interface().(interface{ JSONWords() string }); ok {
		return w.JSONWords()
	}
	switch t {
	case reflect.TypeFor[time.Time]():
		return `a time such as "2026-11-23T06:02:11Z" (RFC 3339)`
	case reflect.TypeFor[time.Duration]():
		return "a number of nanoseconds"
	case reflect.TypeFor[time.Weekday]():
		return "a weekday number, 0 = Sunday … 6 = Saturday"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return `a string in quotes`
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 text in quotes"
		}
		return "a list [...]"
	case reflect.Map, reflect.Struct:
		return "an object {...}"
	}
	return "a value"
}
