package source

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
)

// explain turns a decoding error of a source into one that says where:
// encoding/json names neither the path of an unknown field nor that of a
// value its type refused (a date such as "2026-13-01").
func explain(raw []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := position(raw, syn.Offset)
		return fmt.Errorf("line %d, column %d: %w: the file is not valid JSON", line, col, err)
	}
	if errors.Is(err, io.EOF) {
		return errors.New(`empty: a source is {"roster": {...}, "guardians": {...}}`)
	}
	if where := locate(raw, reflect.TypeFor[Source](), ""); where != nil {
		return where
	}
	return err
}

// position returns the 1-based line and column (in bytes) of the byte a
// *json.SyntaxError's Offset points just after.
func position(raw []byte, off int64) (line, col int) {
	if len(raw) == 0 {
		return 1, 1
	}
	off = min(max(off, 1), int64(len(raw)))
	before := raw[:off]
	line = bytes.Count(before[:len(before)-1], []byte("\n")) + 1
	col = max(len(before)-bytes.LastIndexByte(before[:len(before)-1], '\n')-1, 1)
	return line, col
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// locate walks raw against type t and returns the first place (keys in
// sorted order, list items in order) where raw does not fit
// t: an unknown field, or a value t refuses. It returns nil when raw fits.
func locate(raw json.RawMessage, t reflect.Type, path string) error {
	name := path
	if name == "" {
		name = "the source"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("%s: want an object {...}", name)
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var known []string
		for _, f := range fields {
			known = append(known, f.name)
		}
		for _, k := range keys {
			// encoding/json prefers the exact name, then any case.
			i := slices.IndexFunc(fields, func(f field) bool { return f.name == k })
			if i < 0 {
				i = slices.IndexFunc(fields, func(f field) bool { return strings.EqualFold(f.name, k) })
			}
			if i < 0 {
				return fmt.Errorf("%s: unknown field: remove it or correct its spelling (%s knows %s)", join(path, k), name, strings.Join(known, ", "))
			}
			if err := locate(obj[k], fields[i].typ, join(path, fields[i].name)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%s: want a list [...]", name)
		}
		for i, it := range items {
			if err := locate(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("%s: want an object {...}", name)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := locate(obj[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: want a %s, got a %s", name, kindName(t), te.Value)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

type field struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the JSON fields of struct type t as encoding/json sees
// them (exported, not "-"; embedded structs are not used in sources).
func jsonFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
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

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.String()
}
