package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/cli"
)

// DefaultSocket is where kiumtapd answers.
const DefaultSocket = "/run/kiumtap/kiumtapd.sock"

// query runs status, events or roster against a socket or a store file.
func query(ctx context.Context, what string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", DefaultSocket, "kiumtapd's socket")
	storePath := fs.String("store", "", "read this store file directly (kiumtapd stopped)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	var day, outcome, child, limit string
	if what == "events" {
		fs.StringVar(&day, "day", "", "only this day (2026-11-23; today: today)")
		fs.StringVar(&outcome, "outcome", "", "only this outcome (check_in, no_data, ...)")
		fs.StringVar(&child, "child", "", "only this child ID")
		fs.StringVar(&limit, "limit", "", "at most this many, the newest (default 1000)")
	}
	if err := cli.Parse(fs, args); err != nil { // flags after the arguments too; -h is flag.ErrHelp
		return err
	}
	if day == "today" {
		day = firmware.DateOf(time.Now()).String()
	}
	f, err := localapi.ParseFilter(day, outcome, child, limit)
	if err != nil {
		return fmt.Errorf("%w: -%v", cli.ErrUsage, err)
	}

	var status localapi.Status
	var events []localapi.Event
	var roster *firmware.Roster
	if *storePath != "" {
		st, err := store.Open(store.Options{Path: *storePath, ReadOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		switch what {
		case "status":
			status, err = localapi.StatusOf(st, time.Now())
		case "events":
			events, err = localapi.EventsOf(st, f)
		case "roster":
			roster, _, err = st.Roster()
		}
		if err != nil {
			return err
		}
	} else {
		path := "/" + what
		if what == "events" {
			q := url.Values{}
			for k, v := range map[string]string{"day": day, "outcome": outcome, "child": child, "limit": limit} {
				if v != "" {
					q.Set(k, v)
				}
			}
			path += "?" + q.Encode()
		}
		var into any = &status
		switch what {
		case "events":
			into = &events
		case "roster":
			into = &roster
		}
		if err := get(ctx, *socket, path, into); err != nil {
			return err
		}
		if roster != nil {
			if err := roster.Validate(); err != nil { // builds its indexes
				return fmt.Errorf("kiumtapd sent a roster that does not validate: %w", err)
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		switch what {
		case "status":
			return enc.Encode(status)
		case "events":
			return enc.Encode(events)
		}
		return enc.Encode(roster)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch what {
	case "status":
		printStatus(tw, status)
	case "events":
		fmt.Fprintln(tw, "SEQ\tTIME (KST)\tOUTCOME\tREASON\tFLAGS\tCHILD\tNAME")
		for _, e := range events {
			t := e.Time.Format("2006-01-02 15:04:05")
			if !e.Synced {
				t += " (clock not set)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, t, e.Outcome.Label().Ko, e.Reason.Label().Ko, joinFlags(e.Flags), e.Child, e.Name)
		}
	case "roster":
		printRoster(tw, roster)
	}
	return nil
}

func get(ctx context.Context, socket, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://kiumtapd"+path, nil)
	if err != nil {
		return err
	}
	resp, err := localapi.Client(socket).Do(req)
	if err != nil {
		return fmt.Errorf("asking kiumtapd on %s: %w (is it running? with it stopped, use -store FILE)", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("kiumtapd: %s", strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func printStatus(w io.Writer, s localapi.Status) {
	fmt.Fprintf(w, "device\t%s (boot %d)\n", s.Device, s.Boots)
	if s.RosterRevision == 0 {
		fmt.Fprintf(w, "roster\tnone yet: no tap can be decided\n")
	} else {
		fmt.Fprintf(w, "roster\trevision %d, received %s (%s ago), %d children\n", s.RosterRevision, s.RosterReceived.In(firmware.KST).Format("2006-01-02 15:04"), s.RosterAge, s.Children)
	}
	fmt.Fprintf(w, "inside today\t%d\n", len(s.Inside))
	for _, p := range s.Inside {
		fmt.Fprintf(w, "\t%s %s since %s\n", p.Child, p.Name, p.Since.In(firmware.KST).Format("15:04"))
	}
	oldest := "-"
	if !s.OutboxOldest.IsZero() {
		oldest = s.OutboxOldest.In(firmware.KST).Format("2006-01-02 15:04:05")
	}
	fmt.Fprintf(w, "outbox\t%d events waiting, oldest %s, last sequence %d\n", s.OutboxDepth, oldest, s.LastSeq)
	if r := s.Reader; r != nil {
		since := r.Since.In(firmware.KST).Format("2006-01-02 15:04:05")
		if r.Up {
			fmt.Fprintf(w, "reader\tanswering since %s (%d recoveries)\n", since, r.Recoveries)
		} else {
			fmt.Fprintf(w, "READER NOT ANSWERING\tsince %s: %s\n", since, r.Error)
			fmt.Fprintf(w, "\tcards cannot be read; kiumtapd keeps trying. Check the reader's wires (docs/operations.md), then kiumctl status again\n")
		}
	}
	l := s.Link
	if l == nil {
		return
	}
	kst := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.In(firmware.KST).Format("2006-01-02 15:04:05")
	}
	state := "DOWN since " + kst(l.Since) + " (taps are kept and sent when the link is back)"
	if l.Connected {
		state = "connected since " + kst(l.Since)
	}
	fmt.Fprintf(w, "portal\t%s, broker %s; last ack %s\n", state, l.Broker, kst(l.LastAck))
	if !l.Connected && l.LastError != "" {
		fmt.Fprintf(w, "\tlast error: %s\n", l.LastError)
	}
	if r := l.Refused; r != nil {
		fmt.Fprintf(w, "EVENTS REFUSED\tthe portal refused this terminal's events (%s) since %s, from event %d: %s\n", count(r.Count, "refusal"), kst(r.Since), r.Seq, r.Reason)
		fmt.Fprintf(w, "\tnothing is lost: they are sent again, in smaller batches and less often; tell the operator the reason above\n")
	}
	if r := l.Rejected; r != nil {
		fmt.Fprintf(w, "last refused here\t%s on %s: %s\n", kst(r.Time), r.Topic, r.Reason)
	}
}

func printRoster(w io.Writer, r *firmware.Roster) {
	if r == nil {
		fmt.Fprintln(w, "no roster yet")
		return
	}
	fmt.Fprintf(w, "centre\t%s %s, revision %d\n", r.Centre.ID, r.Centre.Name, r.Revision)
	for _, t := range r.Centre.Terms {
		fmt.Fprintf(w, "term\t%s %s to %s, open %s\n", t.Name, t.From, t.To, t.Hours)
	}
	fmt.Fprintln(w, "\nCHILD\tNAME\tCARDS\tBOOKINGS")
	for _, c := range r.Children {
		var cards, books []string
		for _, k := range r.Cards {
			if k.ChildID == c.ID {
				cards = append(cards, k.Key[:8]+"… "+string(k.State))
			}
		}
		for _, b := range r.BookingsOf(c.ID) {
			books = append(books, fmt.Sprintf("%s %s %s–%s %s", b.Type, b.Status, b.From, b.To, b.Window))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.ID, c.Name, strings.Join(cards, "; "), strings.Join(books, "; "))
	}
}

func joinFlags(fs []firmware.Flag) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.Label().Ko
	}
	return strings.Join(s, ", ")
}
