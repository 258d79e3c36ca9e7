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

// gapsCmd shows a centre's stalled event logs and the gaps recorded
// (kiumctl gaps), or records a stalled log's missing events as lost at
// the portal (kiumctl gap accept): the terminal's later events then flow
// again. See portal/bridge/gap.go.
func gapsCmd(ctx context.Context, accept bool, args []string, stdout, stderr io.Writer) error {
	name := "kiumctl gaps"
	if accept {
		name = "kiumctl gap accept"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("bridge", DefaultBridgeSocket, "kiumbridge's control socket")
	centre := fs.String("centre", "", "centre ID (required)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	device := fs.String("device", "", "the stalled terminal (gap accept; required)")
	through := fs.Uint64("through", 0, "the last missing sequence, as kiumctl gaps reports it (gap accept; required)")
	by := fs.String("by", defaultUser(), "who accepts the loss, for the record (default: your user name)")
	if err := cli.Parse(fs, args); err != nil { // flags after the arguments too; -h is flag.ErrHelp
		return err
	}
	switch {
	case *centre == "" || fs.NArg() != 0:
		return fmt.Errorf("%w: %s -centre C", cli.ErrUsage, name)
	case accept && (*device == "" || *through == 0):
		return fmt.Errorf("%w: kiumctl gap accept -centre C -device D -through N (kiumctl gaps shows N)", cli.ErrUsage)
	case accept && *by == "":
		return fmt.Errorf("%w: kiumctl gap accept: -by is required (no user name to take it from)", cli.ErrUsage)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if accept {
		var g api.Gap
		req := api.GapRequest{Centre: *centre, Device: *device, Through: *through, By: *by}
		if err := askBridge(ctx, *socket, http.MethodPost, "/gap", req, &g); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, g)
		}
		fmt.Fprintf(tw, "recorded: events %d..%d of terminal %s (log %s) are lost at the portal; its later events are taken again\n", g.From, g.To, g.Device, g.Log)
		return nil
	}
	var v api.GapsView
	if err := askBridge(ctx, *socket, http.MethodGet, "/gaps?"+url.Values{"centre": {*centre}}.Encode(), nil, &v); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	if len(v.Stalled) == 0 {
		fmt.Fprintf(tw, "no stalled terminal at %s\n", *centre)
	} else {
		fmt.Fprintln(tw, "STALLED\tLOG\tPORTAL HAS UP TO\tTERMINAL SENDS FROM\tSINCE (KST)\tTO ACCEPT")
		for _, s := range v.Stalled {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\tkiumctl gap accept -centre %s -device %s -through %d\n", s.Device, s.Log, s.Last, s.Lowest,
				s.Since.In(firmware.KST).Format("2006-01-02 15:04:05"), s.Centre, s.Device, s.Lowest-1)
		}
		fmt.Fprintln(tw, "\nevents in between were acknowledged, so the terminal deleted them, and the portal no longer has them (its store restored from an older backup?); accepting records them as lost")
	}
	for _, g := range v.Recorded {
		fmt.Fprintf(tw, "recorded %s: %s log %s events %d..%d lost, accepted by %s\n", g.Recorded.In(firmware.KST).Format("2006-01-02 15:04"), g.Device, g.Log, g.From, g.To, g.By)
	}
	return nil
}
