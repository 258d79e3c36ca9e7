package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/api"
)

// DefaultBridgeSocket is where kiumbridge answers (its config's
// "control"; by default beside its store).
const DefaultBridgeSocket = "/var/lib/kiumbridge/kiumbridge.sock"

// cardsCmd runs the portal side's card commands against a running
// kiumbridge: cards list, cards history, enrol, revoke.
func cardsCmd(ctx context.Context, what string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("bridge", DefaultBridgeSocket, "kiumbridge's control socket")
	centre := fs.String("centre", "", "centre ID (required)")
	var asJSON *bool
	var child, device, by *string
	switch what {
	case "cards list", "cards history":
		asJSON = fs.Bool("json", false, "print JSON, for scripts")
	case "enrol", "revoke":
		child = fs.String("child", "", "child ID (required)")
		by = fs.String("by", defaultUser(), "who does it, for the audit (default: your user name)")
		if what == "enrol" {
			device = fs.String("device", "", "the terminal (default: the centre's only one)")
		}
	}
	if err := cli.Parse(fs, args); err != nil { // flags after the arguments too; -h is flag.ErrHelp
		return err
	}
	switch {
	case *centre == "":
		return fmt.Errorf("%w: kiumctl %s: -centre is required", cli.ErrUsage, what)
	case what == "cards history" && fs.NArg() != 1:
		return fmt.Errorf("%w: kiumctl cards history -centre C [-json] CHILD", cli.ErrUsage)
	case what != "cards history" && fs.NArg() != 0:
		return fmt.Errorf("%w: kiumctl %s: unexpected %q", cli.ErrUsage, what, fs.Args())
	case child != nil && *child == "":
		return fmt.Errorf("%w: kiumctl %s: -child is required", cli.ErrUsage, what)
	case by != nil && *by == "":
		return fmt.Errorf("%w: kiumctl %s: -by is required (no user name to take it from)", cli.ErrUsage, what)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch what {
	case "cards list":
		var v api.CardsView
		if err := askBridge(ctx, *socket, http.MethodGet, "/cards?"+url.Values{"centre": {*centre}}.Encode(), nil, &v); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, v)
		}
		fmt.Fprintf(tw, "centre %s %s\n\nCHILD\tNAME\tCARD\tSTATE\tSINCE (KST)\tOTHER CARDS\n", v.Centre, v.Name)
		for _, c := range v.Children {
			card, state, since := "-", "none", "-"
			if c.Card != "" {
				card, state = short(c.Card), string(c.State)
				if !c.Since.IsZero() {
					since = c.Since.In(firmware.KST).Format("2006-01-02 15:04")
				}
			}
			var others []string
			for _, k := range c.Cards {
				if k.Key != c.Card {
					others = append(others, short(k.Key)+" "+string(k.State))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Child, c.Name, card, state, since, strings.Join(others, "; "))
		}
	case "cards history":
		var h []api.Change
		q := url.Values{"centre": {*centre}, "child": {fs.Arg(0)}}
		if err := askBridge(ctx, *socket, http.MethodGet, "/history?"+q.Encode(), nil, &h); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, h)
		}
		if len(h) == 0 {
			fmt.Fprintf(tw, "no card changes of %s at %s\n", fs.Arg(0), *centre)
			return nil
		}
		fmt.Fprintln(tw, "WHEN (KST)\tOUTCOME\tFLOW\tBY\tOLD → NEW\tEVENT\tWHY")
		for _, c := range h {
			outcome := c.Outcome
			if c.Reason != "" {
				outcome += " (" + c.Reason.Label().Ko + ")"
			}
			event := "-"
			if c.Device != "" {
				event = fmt.Sprintf("%s-%d", c.Device, c.Seq)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s → %s\t%s\t%s\n", c.At.In(firmware.KST).Format("2006-01-02 15:04:05"), outcome, c.Flow, c.By,
				short(c.OldCard), short(c.NewCard), event, c.Detail)
		}
	case "enrol":
		var res api.EnrolResult
		req := api.EnrolRequest{Centre: *centre, Child: *child, Device: *device, By: *by}
		if err := askBridge(ctx, *socket, http.MethodPost, "/enrol", req, &res); err != nil {
			return err
		}
		fmt.Fprintf(tw, "terminal %s at %s is waiting for %s (%s)'s card: present it there within 5 minutes\n", res.Device, res.Centre, res.Name, res.Child)
		for _, l := range res.Screen {
			fmt.Fprintf(tw, "  | %s\n", l)
		}
		fmt.Fprintln(tw, "the binding reaches the portal as the terminal's event: kiumctl cards history shows it")
	case "revoke":
		var c api.Change
		req := api.RevokeRequest{Centre: *centre, Child: *child, By: *by}
		if err := askBridge(ctx, *socket, http.MethodPost, "/revoke", req, &c); err != nil {
			return err
		}
		fmt.Fprintf(tw, "revoked card %s of %s at %s; the next roster revision takes it to the terminals\n", short(c.OldCard), c.Child, c.Centre)
	}
	return nil
}

// askBridge sends a request to kiumbridge's control socket and decodes
// the answer into into. A refusal comes back as an error naming the rule.
func askBridge(ctx context.Context, socket, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kiumbridge"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := api.ControlClient(socket).Do(req)
	if err != nil {
		return fmt.Errorf("asking kiumbridge on %s: %w (is it running? -bridge is its config's control socket)", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ce api.ControlError
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &ce) != nil || ce.Error == "" {
			return fmt.Errorf("kiumbridge: %s: %s", resp.Status, strings.TrimSpace(string(raw)))
		}
		if ce.Reason != "" {
			return &refusal{ce}
		}
		return errors.New(ce.Error)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// refusal is the rules' no, from kiumbridge.
type refusal struct{ api.ControlError }

func (r *refusal) Error() string {
	if r.Detail != "" {
		return fmt.Sprintf("refused (%s, %s): %s", r.Reason.Label().Ko, r.Reason, r.Detail)
	}
	return r.ControlError.Error
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// short is a card key's first digits; "-" for none.
func short(key string) string {
	switch {
	case key == "":
		return "-"
	case len(key) > 8:
		return key[:8] + "…"
	}
	return key
}

func defaultUser() string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if u := os.Getenv(k); u != "" {
			return u
		}
	}
	return ""
}
