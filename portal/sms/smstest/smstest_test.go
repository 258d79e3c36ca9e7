package smstest

import (
	"context"
	"testing"
	"time"

	"kiumtap/portal/sms"
)

// The fake takes what the real webhook provider sends, and counts repeats
// of a key.
func TestWebhookTakesTheProvider(t *testing.T) {
	w := NewWebhook(t, "s3cret")
	told := make(chan Delivery, 2)
	w.After(func(d Delivery) { told <- d })
	p := sms.NewWebhook(sms.WebhookOptions{URL: w.URL, Secret: w.Secret})
	text := sms.Render(sms.Arrival, "망원1동", "김민준", time.Date(2026, 11, 23, 6, 2, 0, 0, time.UTC))
	for range 2 {
		r, err := p.Send(context.Background(), sms.Message{Key: "door/L/7/0", To: "01012345678", From: "0212345678", Text: text})
		if err != nil || r.ID != "hook-door/L/7/0" {
			t.Fatalf("send: %+v %v", r, err)
		}
	}
	if d := <-told; d.Key != "door/L/7/0" || d.Nth != 1 || d.Text != text.Body {
		t.Fatalf("first delivery %+v", d)
	}
	if d := <-told; d.Nth != 2 {
		t.Fatalf("the repeat %+v", d)
	}
	if w.Unique() != 1 || w.Total() != 2 || w.Keys()["door/L/7/0"] != 2 || len(w.Deliveries()) != 2 {
		t.Fatalf("unique %d total %d", w.Unique(), w.Total())
	}
}
