package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/api"
)

// terminalsCmd shows the last status of each terminal of a centre, as the
// bridge has it from their retained status messages (kiumctl terminals).
func terminalsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl terminals", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("bridge", DefaultBridgeSocket, "kiumbridge's control socket")
	centre := fs.String("centre", "", "centre ID (required)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := cli.Parse(fs, args); err != nil { // flags after the arguments too; -h is flag.ErrHelp
		return err
	}
	if *centre == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: kiumctl terminals -centre C [-json]", cli.ErrUsage)
	}
	var ts []api.TerminalView
	if err := askBridge(ctx, *socket, http.MethodGet, "/terminals?"+url.Values{"centre": {*centre}}.Encode(), nil, &ts); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, ts)
	}
	if len(ts) == 0 {
		fmt.Fprintf(stdout, "no terminal of %s has connected yet\n", *centre)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TERMINAL\tSTATE\tAS OF (KST)\tOUTBOX\tOLDEST WAITING\tROSTER\tREADER\tCLOCK\tLAST REFUSED")
	var refusals []string
	for _, t := range ts {
		if r := t.Refused; r != nil {
			refusals = append(refusals, fmt.Sprintf("EVENTS REFUSED by the portal: terminal %s, %s since %s, from event %d: %s",
				t.Device, count(r.Count, "message"), r.Since.In(firmware.KST).Format("2006-01-02 15:04:05"), r.Seq, r.Reason))
		} else if t.Status != nil && t.Status.Refused != nil {
			r := t.Status.Refused
			refusals = append(refusals, fmt.Sprintf("EVENTS REFUSED (the terminal reports): terminal %s, %s since %s, from event %d: %s",
				t.Device, count(r.Count, "refusal"), r.Since.In(firmware.KST).Format("2006-01-02 15:04:05"), r.Seq, r.Reason))
		}
		if c := t.Clash; c != nil {
			refusals = append(refusals, fmt.Sprintf("DEVICE ID USED TWICE: %d terminals use device ID %s (instances %s, %d switches since %s): a cloned SD card or certificate? Give each terminal its own device ID and certificate (kiumbridge device issue)",
				len(c.Instances), t.Device, strings.Join(c.Instances, ", "), c.Switches, c.Since.In(firmware.KST).Format("2006-01-02 15:04:05")))
		}
		s := t.Status
		if s == nil {
			fmt.Fprintf(tw, "%s\tno status yet\t-\t-\t-\t-\t-\t-\t-\n", t.Device)
			continue
		}
		at := t.Received
		if !s.Time.IsZero() {
			at = s.Time
		}
		if s.State == "offline" {
			fmt.Fprintf(tw, "%s\toffline\t%s\t-\t-\t-\t-\t-\t-\n", t.Device, at.In(firmware.KST).Format("2006-01-02 15:04:05"))
			continue
		}
		reader := "ok"
		if !s.ReaderHealthy {
			reader = "FAILED"
		}
		if s.ReaderResets > 0 {
			reader += fmt.Sprintf(" (%d resets)", s.ReaderResets)
		}
		clock := "synced"
		if !s.ClockSynced {
			clock = "NOT SET"
		}
		refused := "-"
		if s.Rejected != nil {
			refused = s.Rejected.Time.In(firmware.KST).Format("01-02 15:04") + " " + s.Rejected.Reason
		}
		fmt.Fprintf(tw, "%s\tonline\t%s\t%d\t%s\trev %d, %s old\t%s\t%s\t%s\n", t.Device, at.In(firmware.KST).Format("2006-01-02 15:04:05"),
			s.OutboxDepth, age(s.OldestAgeS), s.RosterRev, age(s.RosterAgeS), reader, clock, refused)
	}
	tw.Flush()
	for _, r := range refusals {
		fmt.Fprintln(stdout, r)
	}
	if len(refusals) > 0 {
		fmt.Fprintln(stdout, "Events refused are kept at the terminal and sent again, in smaller batches and less often; they flow once the cause is fixed (an unknown centre: add its roster source).")
	}
	return nil
}

// count is "1 message", "3 messages".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// age is a number of seconds as a short duration: 45s, 12m, 3h, 2d.
func age(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case sec <= 0:
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
