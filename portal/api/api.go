// Package api owns the control API kiumbridge answers on its unix socket
// (the config's "control"): the request and response types, the errors
// and the status each is answered with, and the client that kiumctl
// (cards, enrol, revoke, terminals, gaps) and kiumbridge's own
// subcommands (status, texts, export) ask with. The handler that answers
// is the bridge's (bridge.ControlHandler); this package imports no part
// of the bridge, nor MQTT, bbolt or PostgreSQL, so that a client links
// only this.
//
// The endpoints, JSON over HTTP:
//
//	GET  /cards?centre=C             CardsView
//	GET  /history?centre=C[&child=X] []Change, oldest first
//	POST /enrol   EnrolRequest       EnrolResult: the terminal's answer
//	POST /revoke  RevokeRequest      Change
//	GET  /terminals?centre=C         []TerminalView: each terminal's last status
//	GET  /gaps?centre=C              GapsView: stalled logs, gaps recorded
//	POST /gap     GapRequest         Gap: a stalled log's events recorded as lost
//	GET  /status                     Status: the bridge now (kiumbridge status)
//	GET  /texts[?state=S]            TextsView: the text queue (kiumbridge texts)
//	GET  /export?centre=C&month=M    ExportView: a month's sessions and occupancy (kiumbridge export)
//
// An error answers with a status and a ControlError: 400 a bad request
// (ErrDevice among them), 404 an unknown centre (ErrUnknownCentre), 409 a
// refusal by the rules or by the terminal (Reason names the rule), 503
// no broker (ErrNotConnected, ErrBroker), 504 a terminal that did not
// answer (ErrNoAnswer). Ask is the client.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/unixhttp"
)

// Errors of the control socket's operations: the bridge's, each answered
// with its status (see the package comment).
var (
	ErrUnknownCentre = errors.New("no roster source for centre")
	ErrDevice        = errors.New("terminal")
	ErrNoAnswer      = errors.New("did not answer")
	ErrNotConnected  = errors.New("the bridge is not connected to the broker")
	ErrBroker        = errors.New("the broker did not take it")
)

// ControlError is the body of an error answer.
type ControlError struct {
	Error  string          `json:"error"`
	Reason firmware.Reason `json:"reason,omitempty"` // the rule refusing, when one does
	Detail string          `json:"detail,omitempty"` // what the rule says to do
}

// ControlClient asks a running kiumbridge on its control socket. An
// enrol waits for the terminal: allow it the bridge's CommandWait.
func ControlClient(path string) *http.Client {
	c := unixhttp.Client(path)
	c.Timeout = 30 * time.Second
	return c
}

// ErrNoBridge is Ask's error when no kiumbridge answers on the control
// socket: no socket file, or nobody listening on it (a stale file). No
// bridge is running with that socket.
var ErrNoBridge = errors.New("no kiumbridge answers on the control socket")

// AnswerError is an error answer of the control socket.
type AnswerError struct {
	Status int // its HTTP status (see the package comment)
	ControlError
}

func (e *AnswerError) Error() string { return e.ControlError.Error }

// Is makes a 404 answer ErrUnknownCentre, as it was at the bridge.
func (e *AnswerError) Is(target error) bool {
	return target == ErrUnknownCentre && e.Status == http.StatusNotFound
}

// Ask sends a request to the kiumbridge answering on socket and decodes
// its answer into into (body, when not nil, goes as JSON). No bridge
// answering is an error wrapping ErrNoBridge; an error answer is an
// *AnswerError.
func Ask(ctx context.Context, socket, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("asking kiumbridge: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kiumbridge"+path, rd)
	if err != nil {
		return fmt.Errorf("asking kiumbridge: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ControlClient(socket).Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.Is(err, unixhttp.ErrNoServer) && errors.As(err, &op):
			return fmt.Errorf("%w %s (%w)", ErrNoBridge, socket, op.Err)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("asking kiumbridge on %s: %w: the socket is for the bridge's own user (mode 0600): run this as that user", socket, err)
		}
		return fmt.Errorf("asking kiumbridge on %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ae := &AnswerError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &ae.ControlError) != nil || ae.ControlError.Error == "" {
			ae.ControlError = ControlError{Error: fmt.Sprintf("kiumbridge on %s answered %s: %s", socket, resp.Status, strings.TrimSpace(string(raw)))}
		}
		return ae
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("the answer of kiumbridge on %s to %s: %w", socket, path, err)
	}
	return nil
}

// UserRequest adds a staff account for the staff page (POST /users),
// sets its password (POST /users/passwd) or disables it (POST
// /users/disable); By is who asks, for the audit.
type UserRequest struct {
	Name     string   `json:"name"`
	Password string   `json:"password,omitempty"`
	Centres  []string `json:"centres,omitempty"`
	By       string   `json:"by"`
}

// UserView is a staff account as GET /users lists it (no password hash).
type UserView struct {
	Name     string    `json:"name"`
	Centres  []string  `json:"centres"`
	Disabled bool      `json:"disabled,omitempty"`
	Locked   time.Time `json:"locked_until,omitzero"`
	Created  time.Time `json:"created"`
}
