package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/api"
)

// alertsCmd lists a centre's not-arrived alerts (미등원) and absences of a
// day (kiumctl alerts).
func alertsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl alerts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("bridge", DefaultBridgeSocket, "kiumbridge's control socket")
	centre := fs.String("centre", "", "centre ID (required)")
	day := fs.String("day", "", "the day, 2026-12-01 (default today, KST)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *centre == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: kiumctl alerts -centre C [-day D] [-json]", cli.ErrUsage)
	}
	var v api.AlertsView
	if err := askBridge(ctx, *socket, http.MethodGet, "/alerts?"+url.Values{"centre": {*centre}, "day": {*day}}.Encode(), nil, &v); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	if len(v.Alerts) == 0 {
		fmt.Fprintf(stdout, "%s %s: no child booked that day is missing (미등원 없음)\n", v.Centre, v.Day)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "CHILD\tNAME\tBOOKED\tNO ARRIVAL BY\tGUARDIANS\tSTATE\n")
		for _, a := range v.Alerts {
			told, state := "not told", "NOT ARRIVED (미등원)"
			if a.Told > 0 {
				told = fmt.Sprintf("%d message(s)", a.Told)
			}
			if !a.Arrived.IsZero() {
				state = "arrived " + a.Arrived.In(firmware.KST).Format("15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Child, a.Name, a.Window, a.Due.In(firmware.KST).Format("15:04"), told, state)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, m := range v.Absent {
		note := ""
		if m.Note != "" {
			note = ": " + m.Note
		}
		fmt.Fprintf(stdout, "absent (결석): %s %s, marked by %s at %s%s\n", m.Child, m.Name, m.By, m.At.In(firmware.KST).Format("01-02 15:04"), note)
	}
	return nil
}

// absentCmd marks a child absent (결석) for a day, so that no not-arrived
// alert is raised for it, or takes the mark back (kiumctl absent).
func absentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl absent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("bridge", DefaultBridgeSocket, "kiumbridge's control socket")
	centre := fs.String("centre", "", "centre ID (required)")
	child := fs.String("child", "", "child ID (required)")
	day := fs.String("day", "", "the day, 2026-12-01 (default today, KST)")
	by := fs.String("by", defaultUser(), "who marks it, kept with the mark (default: your user name)")
	note := fs.String("note", "", "why, for the other staff (병원 진료…)")
	undo := fs.Bool("undo", false, "take the mark back")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *centre == "" || *child == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: kiumctl absent -centre C -child X [-day D] [-by NAME] [-note TEXT] [-undo]", cli.ErrUsage)
	}
	req := api.AbsentRequest{Centre: *centre, Child: *child, Day: *day, By: *by, Note: *note, Undo: *undo}
	if err := askBridge(ctx, *socket, http.MethodPost, "/absent", req, &struct{}{}); err != nil {
		return err
	}
	when := *day
	if when == "" {
		when = "today"
	}
	if *undo {
		fmt.Fprintf(stdout, "%s is no longer marked absent %s: the not-arrived alert applies again\n", *child, when)
	} else {
		fmt.Fprintf(stdout, "%s marked absent (결석) %s: no not-arrived alert for it\n", *child, when)
	}
	return nil
}
