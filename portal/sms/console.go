package sms

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// console prints texts instead of sending them.
type console struct {
	mu sync.Mutex // serialises writes to w and n
	w  io.Writer
	n  int
}

var _ Provider = (*console)(nil)

// NewConsole returns a provider that prints each text to w instead of
// sending it, with the middle of the number masked:
//
//	SMS → 010-****-5678: [우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.
//	LMS → 010-****-5678 [우리동네키움센터 알림]: ...
//
// Receipts are "console-1", "console-2", ... It is safe for concurrent use;
// a nil w discards the texts.
func NewConsole(w io.Writer) Provider {
	if w == nil {
		w = io.Discard
	}
	return &console{w: w}
}

func (c *console) Name() string { return "console" }

func (c *console) Send(ctx context.Context, m Message) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, &Error{Provider: c.Name(), Err: err, what: "not printed"}
	}
	typ := m.Text.Type
	if typ == "" {
		typ = TypeSMS
	}
	line := typ + " → " + MaskNumber(m.To)
	if m.Text.Subject != "" {
		line += " [" + m.Text.Subject + "]"
	}
	line += ": " + m.Text.Body + "\n"
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.w, line); err != nil {
		return Receipt{}, &Error{Provider: c.Name(), Err: fmt.Errorf("writing the text: %w", err), what: "not printed"}
	}
	c.n++
	return Receipt{ID: "console-" + strconv.Itoa(c.n), Channel: ChannelOf(m.Text)}, nil
}

// MaskNumber hides the middle of a phone number for logs: "01012345678"
// becomes "010-****-5678" and "0212345678" "021-***-5678". Numbers shorter
// than 10 digits keep only their last 4 digits; 4 digits or fewer, and
// anything that is not digits only, are hidden entirely.
func MaskNumber(n string) string {
	switch {
	case !digits(n):
		return strings.Repeat("*", utf8.RuneCountInString(n))
	case len(n) <= 4:
		return strings.Repeat("*", len(n))
	case len(n) < 10:
		return strings.Repeat("*", len(n)-4) + "-" + n[len(n)-4:]
	}
	return n[:3] + "-" + strings.Repeat("*", len(n)-7) + "-" + n[len(n)-4:]
}
