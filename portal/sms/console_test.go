package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMaskNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"01012345678", "010-****-5678"},
		{"0212345678", "021-***-5678"},
		{"0311234567", "031-***-4567"},
		{"15441234", "****-1234"},
		{"12345", "*-2345"},
		{"1234", "****"},
		{"", ""},
		{"010-1234-5678", "*************"},
	} {
		if got := MaskNumber(tc.in); got != tc.want {
			t.Errorf("MaskNumber(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConsole(t *testing.T) {
	var out bytes.Buffer
	p := NewConsole(&out)
	if p.Name() != "console" {
		t.Errorf("Name = %q", p.Name())
	}
	at := time.Date(2025, 3, 4, 6, 2, 0, 0, time.UTC)
	r, err := p.Send(context.Background(), Message{Key: "k1", To: "01012345678", From: "0212345678", Text: Render(Arrival, "망원1동", "김민준", at)})
	if err != nil || r.ID != "console-1" {
		t.Fatalf("Send = %v, %v", r, err)
	}
	lms := Render(Departure, "서울특별시 마포구 망원1동 제2센터", "남궁아름다운별하늘", at)
	if r, err = p.Send(context.Background(), Message{Key: "k2", To: "01098765432", Text: lms}); err != nil || r.ID != "console-2" {
		t.Fatalf("Send = %v, %v", r, err)
	}
	want := "SMS → 010-****-5678: [우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.\n" +
		"LMS → 010-****-5432 [우리동네키움센터 알림]: " + lms.Body + "\n"
	if out.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "12345678") || strings.Contains(out.String(), "98765432") {
		t.Errorf("unmasked number in %q", out.String())
	}
}

func TestConsoleConcurrent(t *testing.T) {
	var out bytes.Buffer
	p := NewConsole(&out)
	const n = 50
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := p.Send(context.Background(), Message{Key: fmt.Sprint(i), To: "01012345678", Text: Text{Body: "hello", Type: TypeSMS}})
			if err != nil {
				t.Error(err)
			}
			ids <- r.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("receipt %s twice", id)
		}
		seen[id] = true
	}
	if lines := strings.Count(out.String(), "\n"); lines != n || len(seen) != n {
		t.Errorf("%d lines, %d receipts, want %d", lines, len(seen), n)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestConsoleErrors(t *testing.T) {
	_, err := NewConsole(failWriter{}).Send(context.Background(), Message{To: "01012345678", Text: Text{Body: "x"}})
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write failure: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = NewConsole(nil).Send(ctx, Message{To: "01012345678", Text: Text{Body: "x"}})
	if !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Errorf("cancelled: %v", err)
	}
}
