// Command kiumtapd runs on the terminal: it reads cards, decides each tap
// from the roster in its store, records it, and only then gives feedback.
//
//	kiumtapd -config /etc/kiumtap/kiumtapd.json
//	kiumtapd -demo
//
// -demo plays a scripted session on the emulated reader with real air
// timing, a store in a temporary directory and a roster made for today,
// checks every outcome it expects, and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c/i2creg"

	"kiumtap/daemon/clock"
	"kiumtap/daemon/config"
	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/daemon/terminal"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/button"
	"kiumtap/hal/display"
	"kiumtap/hal/indicator"
	"kiumtap/hal/pi"
	"kiumtap/hal/rc522"
	"kiumtap/internal/cli"
	"kiumtap/protocol"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "kiumtapd:", err)
		if errors.Is(err, cli.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// tapped is what the demo script sees of a recorded tap.
type tapped struct {
	ev  store.Event
	dec firmware.Decision
}

// syncWriter lets the reader, the tap loop and the demo print together.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	stdout, stderr = &syncWriter{w: stdout}, &syncWriter{w: stderr}
	fs := flag.NewFlagSet("kiumtapd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (JSON)")
	demo := fs.Bool("demo", false, "play a scripted session on the emulated reader and exit")
	verbose := fs.Bool("v", false, "log debug records (bad frames, retries)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var cfg *config.Config
	var roster *firmware.Roster
	var err error
	switch {
	case *demo:
		dir, err := os.MkdirTemp("", "kiumtapd-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg, roster = demoConfig(dir, time.Now())
	case *configPath != "":
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	default:
		fs.Usage()
		return fmt.Errorf("%w: give -config FILE, or -demo", cli.ErrUsage)
	}

	rf := cli.ReaderFlags{
		Kind: cfg.Reader.Kind, Timed: *demo, RxGain: cfg.Reader.RxGainDB, Clones: cfg.Reader.AllowClone,
		Poll: time.Duration(cfg.Reader.Poll),
		Board: pi.Options{SPI: cfg.Reader.SPI, RST: cfg.Reader.RST, IRQ: cfg.Reader.IRQ,
			Green: cfg.Reader.Green, Red: cfg.Reader.Red, Buzzer: cfg.Reader.Buzzer},
	}
	st, err := store.Open(store.Options{Path: cfg.Store, DeviceID: cfg.DeviceID, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.Roster != "" {
		raw, err := os.ReadFile(cfg.Roster)
		if err != nil {
			return fmt.Errorf("reading roster: %w", err)
		}
		if roster, err = store.DecodeRoster(raw); err != nil {
			return fmt.Errorf("roster %s: %w", cfg.Roster, err)
		}
	}
	if roster != nil {
		cur, _, err := st.Roster()
		switch {
		case errors.Is(err, store.ErrNoRoster) || (err == nil && roster.Revision > cur.Revision):
			if err := st.ApplyRoster(roster, time.Now()); err != nil {
				return err
			}
		case err == nil:
			log.Info("roster file not newer than the stored roster; keeping the stored one", "file_revision", roster.Revision, "stored_revision", cur.Revision)
		default:
			return err
		}
	}

	r, err := rf.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	if r.Emu != nil {
		// The emulated terminal's LEDs and buzzer are pins that go nowhere;
		// the console shows the screen and names the pattern.
		r.Pins = indicator.Pins{Green: &gpiotest.Pin{N: "GREEN"}, Red: &gpiotest.Pin{N: "RED"}, Buzzer: &gpiotest.Pin{N: "BUZZER"}}
	}
	opts := rf.DevOptions()
	opts.Logger = log
	dev, err := rc522.New(r.Port, r.RST, r.IRQ, opts)
	if err != nil {
		return err
	}
	ind, err := indicator.New(r.Pins, indicator.Options{Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kiumtapd %s: %s\n", cfg.DeviceID, dev)
	screen, err := openScreen(cfg, r.Emu != nil)
	if err != nil {
		return err
	}

	taps := make(chan tapped, 16)
	removed := make(chan rc522.Event, 16)
	clk := clock.New(clock.Options{})
	var term *terminal.Terminal
	enrol := func(child, by string) ([]string, error) { return term.EnrolFor(child, by) }
	up, err := openUplink(cfg, st, clk, dev, enrol, log)
	if err != nil {
		return err
	}
	term, err = terminal.New(terminal.Options{
		Store: st, Clock: clk, Key: cfg.Key(), RawUID: cfg.StoreRawUID,
		Settings: cfg.Settings(), Language: firmware.Language(cfg.Language), Logger: log,
		DiskWarnFree: mib(cfg.DiskWarnFree),
		Show: func(f firmware.Feedback) {
			if err := ind.Show(indicator.Pattern(f.Pattern)); err != nil {
				log.Error("LEDs and buzzer", "err", err)
			}
			if err := screen.Show(f.Lines); err != nil {
				log.Error("screen", "err", err)
			}
			if r.Emu != nil {
				fmt.Fprintf(stdout, "    screen: %-40s [%s]\n", strings.Join(f.Lines, " / "), f.Pattern)
			}
		},
		Tapped: func(ev store.Event, dec firmware.Decision) {
			if up != nil {
				up.Notify()
			}
			fmt.Fprintf(stdout, "    event #%d %s (%s) %s\n", ev.Seq, dec.Outcome, dec.Reason, flags(dec.Flags))
			if *demo {
				taps <- tapped{ev, dec}
			}
		},
		Bound: func(ev store.Event, ch firmware.BindingChange) {
			if up != nil {
				up.Notify()
			}
			fmt.Fprintf(stdout, "    event #%d card_bound: child %s by %s (%s)\n", ev.Seq, ch.Child, ch.By, ch.Flow)
		},
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan rc522.Event, 16)
	toTerm := make(chan rc522.Event, 16)
	errc := make(chan error, 5)
	if up != nil {
		go func() { errc <- up.Run(ctx) }()
	}
	go func() { errc <- dev.Run(ctx, events) }()
	go func() { errc <- ind.Run(ctx) }()
	go func() { errc <- term.Run(ctx, toTerm) }()
	if btn, err := openButtons(cfg, r, log); err != nil {
		return err
	} else if btn != nil {
		go func() { errc <- btn.Run(ctx, term.Press) }()
	}
	var link func() uplink.Link
	if up != nil {
		link = up.Link
	}
	go func() { errc <- localapi.Serve(ctx, cfg.Socket, localapi.Handler(st, time.Now, link)) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				fmt.Fprintf(stdout, "%s  %-9s card % X\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Card.UID)
				if ev.Kind == rc522.Removed && *demo {
					removed <- ev
				}
				toTerm <- ev
			}
		}
	}()
	if *demo {
		err := playDemo(ctx, r.Emu, dev, st, taps, removed, stdout)
		cancel()
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-errc:
		return err
	}
}

// openUplink makes the link to the portal when a broker is configured.
func openUplink(cfg *config.Config, st *store.Store, clk uplink.Stamper, dev *rc522.Dev, enrol func(child, by string) ([]string, error), log *slog.Logger) (*uplink.Uplink, error) {
	m := cfg.MQTT
	if m.Broker == "" {
		log.Warn("no mqtt.broker configured: working offline; every event stays in the outbox")
		return nil, nil
	}
	key, err := protocol.ParsePublicKey(m.PortalKey)
	if err != nil {
		return nil, fmt.Errorf("mqtt.portal_key: %w", err)
	}
	tc, err := cli.TLS(m.CA, m.Cert, m.Key)
	if err != nil {
		return nil, fmt.Errorf("mqtt.%w", err)
	}
	return uplink.New(uplink.Options{
		Broker: m.Broker, Centre: m.CentreID, Device: cfg.DeviceID, Password: m.Password, TLS: tc, PortalKey: key,
		Store: st, Clock: clk, Window: m.Window, Heartbeat: time.Duration(m.Heartbeat), Version: version, Logger: log,
		// Healthy until a hard reset has failed to bring the chip back.
		Reader: func() (bool, int) { s := dev.Stats(); return s.ResetFailures == 0, int(s.Recoveries) },
		Enrol:  enrol,
	})
}

// openButtons opens the enrolment buttons when they are configured. The
// emulated terminal has none: the portal's enrol command (or a test)
// drives enrolment there.
func openButtons(cfg *config.Config, r *cli.Reader, log *slog.Logger) (*button.Buttons, error) {
	b := cfg.Buttons
	if b.Next == "" {
		log.Info("no buttons configured: cards are enrolled from the portal (kiumctl enrol)")
		return nil, nil
	}
	if r.Board == nil {
		log.Warn("buttons configured, but the reader is emulated: no buttons")
		return nil, nil
	}
	next, choose, err := r.Board.Buttons(b.Next, b.Choose)
	if err != nil {
		return nil, fmt.Errorf("buttons: %w", err)
	}
	return button.New(button.Options{Next: next, Choose: choose, Debounce: time.Duration(b.Debounce), Logger: log})
}

// openScreen opens the SSD1306, or a virtual one for the emulated
// terminal and for "none".
func openScreen(cfg *config.Config, emulated bool) (display.Screen, error) {
	if emulated || cfg.Display.Kind == "none" {
		return display.NewVirtual()
	}
	bus, err := i2creg.Open(cfg.Display.I2C)
	if err != nil {
		return nil, fmt.Errorf("opening I2C bus %q for the display: %w (enable I2C with raspi-config, or set display.kind to none)", cfg.Display.I2C, err)
	}
	return display.NewSSD1306(bus)
}

func flags(fs []firmware.Flag) string {
	if len(fs) == 0 {
		return ""
	}
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return "flags: " + strings.Join(s, ",")
}

func mib(v []int64) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = x << 20
	}
	return out
}
