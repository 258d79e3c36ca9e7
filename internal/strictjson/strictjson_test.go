package strictjson

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type window struct {
	Start clock `json:"start"`
	End   clock `json:"end"`
}

// clock stands for a type with its own text form and words.
type clock string

func (c *clock) UnmarshalText(b []byte) error {
	if len(b) != 5 || b[2] != ':' {
		return errors.New("not HH:MM")
	}
	*c = clock(b)
	return nil
}

func (clock) JSONWords() string { return `a time of day such as "13:00"` }

type booking struct {
	ID       string         `json:"id"`
	Weekdays []time.Weekday `json:"weekdays"`
	Window   window         `json:"window"`
}

type doc struct {
	Revision uint64            `json:"revision"`
	Issued   time.Time         `json:"issued"`
	Bookings []booking         `json:"bookings"`
	Marks    map[string]uint64 `json:"marks"`
}

func TestErrorsSayWhere(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // in the error
	}{
		{"unknown field", "{\n \"revision\": 1,\n \"bookings\": [\n  {\"id\": \"b1\"},\n  {\"id\": \"b2\", \"windw\": {}}\n ]\n}",
			`doc: bookings[1].windw (line 5): unknown field: remove it or correct its spelling (known here: id, weekdays, window)`},
		{"a value of its own type", "{\"bookings\": [{\"id\": \"b1\",\n \"window\": {\"start\": \"13:00\", \"end\": \"7pm\"}}]}",
			`doc: bookings[0].window.end (line 2): not HH:MM (want a time of day such as "13:00")`},
		{"a number for a string", `{"bookings": [{"id": 7}]}`, `doc: bookings[0].id (line 1): want a string in quotes, got number`},
		{"a weekday", `{"bookings": [{"weekdays": ["mon"]}]}`, `doc: bookings[0].weekdays[0] (line 1): want a weekday number, 0 = Sunday … 6 = Saturday, got string`},
		{"a negative revision", `{"revision": -1}`, `doc: revision (line 1): want a whole number, 0 or more, got number -1`},
		{"a time", `{"issued": "yesterday"}`, `doc: issued (line 1)`},
		{"a list for an object", `{"bookings": {}}`, `doc: bookings (line 1): want a list [...]`},
		{"a map value", `{"marks": {"a": "x"}}`, `doc: marks["a"] (line 1): want a whole number, 0 or more, got string`},
		{"syntax", "{\n  \"revision\": 1,\n  \"bookings\": [}\n", `doc (line 3): not valid JSON`},
		{"cut short", `{"revision": 1, "bookings": [`, `ends too early`},
		{"trailing data", `{"revision": 1} {"revision": 2}`, `data after the JSON value`},
		{"empty", ``, `empty: want a JSON value`},
	} {
		var d doc
		err := Decode([]byte(tc.in), 0, "doc", &d)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant it to contain %s", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "strictjson.") || strings.Contains(err.Error(), "uint64") {
			t.Errorf("%s: a Go type name in %q", tc.name, err)
		}
	}
	var d doc
	if err := Decode([]byte(`{"revision": 1}`), 10, "doc", &d); err == nil || !strings.Contains(err.Error(), "more than the 10 allowed") {
		t.Errorf("over the limit: %v", err)
	}
	if err := Decode([]byte(` {"revision": 3, "marks": {"a": 1}} `), 0, "doc", &d); err != nil || d.Revision != 3 {
		t.Errorf("a good one: %v %+v", err, d)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"revision": 1, "bookings": [{"id": "b", "window": {"start": "13:00", "end": "18:00"}}]}`))
	f.Add([]byte("{\n\"bookings\": [{\"windw\": 1}]}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d doc
		if err := Decode(raw, 1<<16, "doc", &d); err != nil && err.Error() == "" {
			t.Fatal("an empty error")
		}
	})
}
