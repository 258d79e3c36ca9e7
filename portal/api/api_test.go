package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"kiumtap/internal/unixhttp"
)

// TestAsk: an answer decoded, an error answer an *AnswerError (a 404 is
// ErrUnknownCentre), and no bridge on the socket ErrNoBridge.
func TestAsk(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "kiumbridge.sock")
	ctx := context.Background()
	var v CardsView
	if err := Ask(ctx, socket, http.MethodGet, "/cards?centre=c", nil, &v); !errors.Is(err, ErrNoBridge) {
		t.Fatalf("no socket: %v, want ErrNoBridge", err)
	}

	l, err := unixhttp.Listen(socket, unixhttp.Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cards", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("centre") != "c" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(ControlError{Error: "no roster source for centre"})
			return
		}
		json.NewEncoder(w).Encode(CardsView{Centre: "c", Children: []ChildCards{{Child: "c01"}}})
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		var req RevokeRequest
		json.NewDecoder(r.Body).Decode(&req)
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(ControlError{Error: "refused " + req.Child, Reason: RefuseNoSource, Detail: "add a source"})
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- unixhttp.Serve(ctx, l, mux) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := Ask(ctx, socket, http.MethodGet, "/cards?centre=c", nil, &v); err != nil || v.Centre != "c" || len(v.Children) != 1 {
		t.Fatalf("cards: %+v, %v", v, err)
	}
	err = Ask(ctx, socket, http.MethodGet, "/cards?centre=x", nil, &v)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !errors.Is(err, ErrUnknownCentre) {
		t.Fatalf("unknown centre: %v (%T), want a 404 that is ErrUnknownCentre", err, err)
	}
	var c Change
	err = Ask(ctx, socket, http.MethodPost, "/revoke", RevokeRequest{Centre: "c", Child: "c01", By: "t"}, &c)
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Reason != RefuseNoSource || ae.Error() != "refused c01" || errors.Is(err, ErrUnknownCentre) {
		t.Fatalf("revoke: %v (%+v)", err, ae)
	}
}
