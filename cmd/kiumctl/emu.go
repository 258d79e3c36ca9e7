package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/internal/cli"
)

const emuUsage = `usage: kiumctl emu COMMAND [-socket S] [-wait 5s] [-json] [CARD]

Presents virtual cards to a kiumtapd whose reader is the emulated MFRC522
(reader.kind "emu" in its configuration). CARD is a UID in hex (4, 7 or 10
bytes: 04A1B2C3, "04 A1 B2 C3", 04:A1:B2:C3), a label of the configuration's
reader.cards, or the name or ID of a child or staff member of the roster
whose card's UID the terminal knows (listed in reader.cards, or placed by
UID before).

Commands:
  place CARD     put the card on the reader and print what the screen shows; it stays there
  remove [CARD]  take the card (without CARD: every card) off the reader
  tap CARD       place, wait for the screen, remove: a child's tap
  cards          the cards the terminal knows, whose they are, which are on the reader`

// emuCmd runs kiumctl emu place|remove|tap|cards against kiumtapd's socket.
func emuCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, emuUsage)
		return fmt.Errorf("%w: kiumctl emu needs a command: place, remove, tap or cards", cli.ErrUsage)
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprintln(stdout, emuUsage)
		return nil
	}
	what := args[0]
	switch what {
	case "place", "remove", "tap", "cards":
	default:
		fmt.Fprintln(stderr, emuUsage)
		return fmt.Errorf("%w: kiumctl emu %q: want place, remove, tap or cards", cli.ErrUsage, what)
	}
	fs := cli.NewFlagSet("kiumctl emu "+what, "kiumctl emu "+map[string]string{
		"place": "place [-socket S] [-wait 5s] [-json] CARD", "remove": "remove [-socket S] [-wait 5s] [-json] [CARD]",
		"tap": "tap [-socket S] [-wait 5s] [-json] CARD", "cards": "cards [-socket S] [-json]"}[what], stderr)
	socket := fs.String("socket", DefaultSocket, "kiumtapd's socket")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the screen, or for the reader to see a card go")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := cli.Parse(fs, args[1:]); err != nil { // flags after the card too; -h is flag.ErrHelp
		return err
	}
	// A UID written with spaces may come as several arguments.
	card := strings.Join(fs.Args(), " ")
	switch {
	case (what == "place" || what == "tap") && card == "":
		return fmt.Errorf("%w: kiumctl emu %s CARD: name the card (a UID in hex, a label of reader.cards, a child's name or ID)", cli.ErrUsage, what)
	case what == "cards" && card != "":
		return fmt.Errorf("%w: kiumctl emu cards takes no card", cli.ErrUsage)
	case *wait <= 0 || *wait > localapi.MaxWait:
		return fmt.Errorf("%w: -wait %v: want more than 0 and at most %v", cli.ErrUsage, *wait, localapi.MaxWait)
	}

	// tap waits twice: for the screen, then for the card seen gone.
	ctx, cancel := context.WithTimeout(ctx, 2**wait+5*time.Second)
	defer cancel()
	if what == "cards" {
		var cards []localapi.VirtualCard
		if err := emuDo(ctx, *socket, http.MethodGet, "/emu/cards", nil, &cards); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, cards)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "UID\tLABEL\tWHOSE\tSTATE\tON READER")
		for _, c := range cards {
			on := ""
			if c.OnReader {
				on = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.UID, c.Label, whose(c), c.State, on)
		}
		return nil
	}
	var res localapi.EmuResult
	req := localapi.EmuRequest{Card: card, Wait: localapi.Duration(*wait)}
	if err := emuDo(ctx, *socket, http.MethodPost, "/emu/"+what, req, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	done := map[string]string{"place": "placed", "remove": "removed", "tap": "tapped"}[what]
	for _, c := range res.Cards {
		fmt.Fprintf(stdout, "%s %s\n", done, describe(c))
	}
	if s := res.Screen; s != nil {
		fmt.Fprintf(stdout, "screen: %s [%s]\n", strings.Join(s.Lines, " / "), s.Pattern)
	}
	if len(res.OnReader) == 0 {
		fmt.Fprintln(stdout, "on the reader: nothing")
	} else {
		on := make([]string, len(res.OnReader))
		for i, c := range res.OnReader {
			on[i] = describe(c)
		}
		fmt.Fprintf(stdout, "on the reader: %s\n", strings.Join(on, "; "))
	}
	return nil
}

// whose says whose a card is, as far as the roster knows.
func whose(c localapi.VirtualCard) string {
	switch {
	case c.Child != "":
		return strings.TrimSpace(c.Child + " " + c.Name)
	case c.Staff != "":
		return strings.TrimSpace("staff " + c.Staff + " " + c.Name)
	}
	return "not in the roster"
}

func describe(c localapi.VirtualCard) string {
	s := "card " + c.UID
	if c.Label != "" {
		s += fmt.Sprintf(" %q", c.Label)
	}
	s += " (" + whose(c)
	if c.State != "" {
		s += ", " + string(c.State)
	}
	return s + ")"
}

// emuDo sends one request to kiumtapd's emulator endpoints.
func emuDo(ctx context.Context, socket, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kiumtapd"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c := localapi.Client(socket)
	c.Timeout = 0 // ctx bounds the wait
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("asking kiumtapd on %s: %w (is it running? -socket names its socket)", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode == http.StatusNotFound && msg == "404 page not found" {
			msg = "this kiumtapd has no emulator endpoints (an older version?)"
		}
		return fmt.Errorf("kiumtapd: %s", msg)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
