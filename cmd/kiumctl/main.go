// Command kiumctl is the staff's and operators' tool:
//
//	kiumctl status [-json]                      roster, who is inside, outbox
//	kiumctl events [-day D] [-outcome O] [-child C] [-json]
//	kiumctl roster show [-json]
//	kiumctl roster push -sources DIR [-centre C -centre-key HEX] SOURCE.json|CHILDREN.csv
//	                                            (portal side) hand a roster source to kiumbridge
//	kiumctl reader probe -reader pi|emu [-wait 10s] [-record FILE|-]
//	kiumctl emu place|tap CARD, emu remove [CARD], emu cards
//	                                            a kiumtapd on the emulated reader: present its cards
//	kiumctl cards list -centre C [-json]        (portal side) the children, their cards and states
//	kiumctl cards history -centre C [-json] CHILD
//	                                            (portal side) every change of a child's card
//	kiumctl enrol -centre C -child X [-device D] [-by NAME]
//	                                            (portal side) the terminal binds the next card presented
//	kiumctl revoke -centre C -child X [-by NAME]
//	                                            (portal side) revoke a child's active card
//	kiumctl terminals -centre C [-json]         (portal side) each terminal's last status
//	kiumctl gaps -centre C [-json]              (portal side) terminals stalled behind a gap
//	kiumctl gap accept -centre C -device D -through N [-by NAME]
//	                                            (portal side) record a stalled terminal's missing events as lost
//	kiumctl alerts -centre C [-day D] [-json]   (portal side) children booked for the day not arrived (미등원), absences
//	kiumctl absent -centre C -child X [-day D] [-by NAME] [-note TEXT] [-undo]
//	                                            (portal side) mark a child absent (결석): no not-arrived alert
//	kiumctl key new                             make a centre key: its terminals' centre_key (hex)
//	kiumctl card key -centre-key HEX UID        a card's key in the centre's roster: staff[].key, cards[].key
//	kiumctl -version
//
// Flags may come before or after the arguments; -h on any command shows
// its flags (exit status 0).
//
// status, events and roster ask a running kiumtapd on its socket (-socket),
// or read a store file directly when kiumtapd is stopped (-store).
//
// cards, enrol and revoke ask a running kiumbridge on its control socket
// (-bridge, the "control" of its config). enrol sends the terminal a
// signed command and prints its answer, or that it did not answer; revoke
// is refused, with the rule's reason and a non-zero exit status, while the
// child has a scheduled (이용예정) booking (FAQ Q18) or no active card. A
// card that lost a conflict (bound first elsewhere) moves only once it is
// revoked where it won.
//
// gaps and gap accept handle a terminal whose acknowledged (and so
// deleted) events the portal lost — its store restored from an older
// backup: the portal holds everything after the gap until an operator
// records the missing events as lost.
//
// probe resets the MFRC522, checks its version, waits for a card and prints
// its UID, ATQA and SAK. With -record it prints the SPI transactions of the
// whole probe in the format of rc522.ParseRecording, so a read on real
// hardware can become a spitest.Playback fixture (hal/rc522/testdata).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"time"

	"periph.io/x/conn/v3/spi/spitest"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/cli"
	"kiumtap/portal/source"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code := cli.ExitCode(err); code != 0 { // -h is no failure
		fmt.Fprintln(os.Stderr, "kiumctl:", err)
		os.Exit(code)
	}
}

const usage = `usage: kiumctl COMMAND [flags]

Commands:
  status         the roster's revision and age, who is inside, the outbox
  events         events, filtered by -day, -outcome, -child
  roster show    the children, their cards and bookings
  roster push    (portal side) check a roster source and hand it to kiumbridge
  reader probe   reset the card reader (-reader pi or emu), wait for a card, print what it read
  emu            present cards to a kiumtapd on the emulated reader: place, remove, tap, cards
  cards list     (portal side) the children of a centre, their cards and states
  cards history  (portal side) every change of a child's card: applied, refused, lost
  enrol          (portal side) the centre's terminal binds the next card presented to a child
  revoke         (portal side) revoke a child's active card
  terminals      (portal side) each terminal of a centre: online, outbox, roster, reader, clock
  gaps           (portal side) terminals stalled behind events the portal lost
  gap accept     (portal side) record those events as lost, so the later ones flow
  alerts         (portal side) children booked for the day who have not arrived (미등원), and absences
  absent         (portal side) mark a child absent (결석) for a day: no not-arrived alert for it
  key new        make a centre key: the centre_key of its terminals
  card key       the key a card UID has in a centre's roster (staff[].key, cards[].key)

kiumctl COMMAND -h (or kiumctl help COMMAND) shows a command's flags;
kiumctl -version prints the version.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) >= 1 && cli.IsVersion(args[0]):
		cli.PrintVersion(stdout, "kiumctl")
		return nil
	case len(args) >= 2 && args[0] == "help":
		return run(ctx, append(slices.Clone(args[1:]), "-h"), stdout, stderr)
	case len(args) >= 1 && cli.IsHelp(args[0]):
		fmt.Fprintln(stdout, usage)
		return nil
	case len(args) >= 2 && args[0] == "key" && args[1] == "new":
		return keyNew(args[2:], stdout, stderr)
	case len(args) >= 2 && args[0] == "card" && args[1] == "key":
		return cardKey(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "status":
		return query(ctx, "status", args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "events":
		return query(ctx, "events", args[1:], stdout, stderr)
	case len(args) >= 2 && args[0] == "roster" && args[1] == "push":
		return rosterPush(args[2:], stdout, stderr)
	case len(args) >= 2 && args[0] == "roster" && args[1] == "show":
		return query(ctx, "roster", args[2:], stdout, stderr)
	case len(args) >= 2 && args[0] == "reader" && args[1] == "probe":
		return probe(ctx, args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "emu":
		return emuCmd(ctx, args[1:], stdout, stderr)
	case len(args) >= 2 && args[0] == "cards" && (args[1] == "list" || args[1] == "history"):
		return cardsCmd(ctx, "cards "+args[1], args[2:], stdout, stderr)
	case len(args) >= 1 && (args[0] == "enrol" || args[0] == "revoke"):
		return cardsCmd(ctx, args[0], args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "terminals":
		return terminalsCmd(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "gaps":
		return gapsCmd(ctx, false, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "alerts":
		return alertsCmd(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "absent":
		return absentCmd(ctx, args[1:], stdout, stderr)
	case len(args) >= 2 && args[0] == "gap" && args[1] == "accept":
		return gapsCmd(ctx, true, args[2:], stdout, stderr)
	}
	if len(args) == 2 && cli.IsHelp(args[1]) { // kiumctl roster -h: the usage lists a group's commands
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", cli.ErrUsage, args)
}

func probe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl reader probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf cli.ReaderFlags
	rf.Register(fs)
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a card")
	record := fs.String("record", "", `write the SPI transactions to this file ("-": standard output)`)
	uid := fs.String("uid", "04A1B2C3D4E5F6", "emulated reader: the UID of the card placed on it (hex, 4, 7 or 10 bytes)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	r, err := rf.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	if r.Emu != nil {
		var b []byte
		if _, err := fmt.Sscanf(*uid, "%X", &b); err != nil || (len(b) != 4 && len(b) != 7 && len(b) != 10) {
			return fmt.Errorf("%w: -uid %q: want 4, 7 or 10 bytes in hex", cli.ErrUsage, *uid)
		}
		r.Emu.Place(rc522emu.NewCard(b, rc522emu.CardOptions{}))
	}
	port, irq := r.Port, r.IRQ
	var rec *spitest.Record
	if *record != "" {
		// A playback has no IRQ line: record in polling mode.
		rec = &spitest.Record{Port: r.Port}
		port, irq = rec, nil
	}
	dev, err := rc522.New(port, r.RST, irq, rf.DevOptions())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reader: %s\n", dev)
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	var card rc522.Card
	for {
		card, err = dev.Scan(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no card within %v (last: %v); stats %+v", *wait, err, dev.Stats())
		}
		if !errors.Is(err, rc522.ErrNoCard) {
			fmt.Fprintf(stderr, "read failed: %v\n", err)
		}
		time.Sleep(45 * time.Millisecond)
	}
	fmt.Fprintf(stdout, "card: UID % X (%d bytes), ATQA % X, SAK %#02x\n", card.UID, len(card.UID), card.ATQA, card.SAK)
	fmt.Fprintf(stdout, "stats: %+v\n", dev.Stats())
	if rec == nil {
		return nil
	}
	out := stdout
	if *record != "-" {
		f, err := os.Create(*record)
		if err != nil {
			return fmt.Errorf("creating recording: %w", err)
		}
		defer f.Close()
		out = f
	}
	if err := rc522.WriteRecording(out, rec.Ops); err != nil {
		return fmt.Errorf("writing recording: %w", err)
	}
	if *record != "-" {
		fmt.Fprintf(stdout, "recorded %d SPI transactions to %s\n", len(rec.Ops), *record)
	}
	return nil
}

// rosterPush checks a roster source (or a staff list) and writes it where
// kiumbridge watches; the bridge publishes the next revision.
func rosterPush(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumctl roster push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("sources", "/etc/kiumbridge/sources", "kiumbridge's roster source directory")
	centre := fs.String("centre", "", "centre ID (required for a CSV list of children)")
	key := fs.String("centre-key", "", "the centre's card key in hex, its terminals' centre_key (for a CSV with card UIDs)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: kiumctl roster push -sources DIR [-centre C -centre-key HEX] SOURCE.json|CHILDREN.csv", cli.ErrUsage)
	}
	src, err := source.Push(*dir, *centre, *key, fs.Arg(0), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s handed to kiumbridge; it publishes the next revision\n", src.Summary())
	return nil
}
