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

// consoleAlimTalk prints messages of the kinds with a template as
// AlimTalk, and those to numbers "not on KakaoTalk" as the SMS/LMS
// fallback, as a provider would send them.
type consoleAlimTalk struct {
	*console
	templates  Templates
	notOnKakao map[string]bool
	fell       map[string]string // receipt → the fallback's channel
}

var (
	_ Reporter        = (*consoleAlimTalk)(nil)
	_ TemplateChecker = (*consoleAlimTalk)(nil)
)

// NewConsoleAlimTalk returns a console provider that prints the
// messages of kinds with a template as AlimTalk:
//
//	알림톡 → 010-****-5678: [우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.
//	알림톡 실패 (카카오톡 미사용자) → SMS 대체 발송 → 010-****-4321: ...
//
// notOnKakao are the numbers (digits) taken as not on KakaoTalk: their
// messages fall back to SMS/LMS. Report tells each at once.
func NewConsoleAlimTalk(w io.Writer, templates Templates, notOnKakao []string) Provider {
	c := NewConsole(w).(*console)
	p := &consoleAlimTalk{console: c, templates: templates, notOnKakao: map[string]bool{}, fell: map[string]string{}}
	for _, n := range notOnKakao {
		p.notOnKakao[strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, n)] = true
	}
	return p
}

func (c *consoleAlimTalk) Send(ctx context.Context, m Message) (Receipt, error) {
	if c.templates[m.Kind] == "" {
		return c.console.Send(ctx, m)
	}
	if err := ctx.Err(); err != nil {
		return Receipt{}, &Error{Provider: c.Name(), Err: err, what: "not printed"}
	}
	line := "알림톡 → " + MaskNumber(m.To) + ": " + m.Text.Body + "\n"
	fell := ""
	if c.notOnKakao[m.To] {
		fell = ChannelOf(m.Text)
		line = "알림톡 실패 (카카오톡 미사용자) → " + strings.ToUpper(fell) + " 대체 발송 → " + MaskNumber(m.To) + ": " + m.Text.Body + "\n"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.w, line); err != nil {
		return Receipt{}, &Error{Provider: c.Name(), Err: fmt.Errorf("writing the text: %w", err), what: "not printed"}
	}
	c.n++
	id := "console-" + strconv.Itoa(c.n)
	if fell != "" {
		c.fell[id] = fell
	}
	return Receipt{ID: id, Channel: ChannelAlimTalk}, nil
}

// Report tells at once how the message went.
func (c *consoleAlimTalk) Report(_ context.Context, r Receipt) (Delivery, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.fell[r.ID]; ch != "" {
		return Delivery{Final: true, Channel: ch, Fallback: "카카오톡 미사용자"}, nil
	}
	return Delivery{Final: true, Channel: r.Channel}, nil
}

// CheckTemplates checks nothing: the console has no templates to look
// up.
func (c *consoleAlimTalk) CheckTemplates(context.Context) error { return nil }
