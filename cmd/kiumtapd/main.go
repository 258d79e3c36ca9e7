// Command kiumtapd runs on the terminal: it reads cards, decides each tap
// from the roster in its store, records it, and only then gives feedback.
//
//	kiumtapd -config /etc/kiumtap/kiumtapd.json [-v]
//	kiumtapd -demo
//	kiumtapd -version
//
// -demo plays a scripted session on the emulated reader with real air
// timing, a store in a temporary directory and a roster made for today,
// checks every outcome it expects, and exits.
//
// With reader.kind "emu" in the configuration the reader is the emulated
// MFRC522: kiumctl emu places and removes its cards (package localapi).
//
// Every part (the reader, the tap loop, the LEDs and buzzer, the buttons,
// the uplink, the local socket) runs in one errgroup: the first to fail
// stops the others and kiumtapd exits with its error; SIGINT or SIGTERM
// stops them all. The store closes only after every part has returned.
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

	"golang.org/x/sync/errgroup"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c/i2creg"

	"kiumtap/daemon/clock"
	"kiumtap/daemon/config"
	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/daemon/telemetry"
	"kiumtap/daemon/terminal"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/button"
	"kiumtap/hal/display"
	"kiumtap/hal/indicator"
	"kiumtap/hal/pi"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/cli"
	"kiumtap/internal/confile"
	"kiumtap/internal/metrics"
	"kiumtap/internal/service"
	"kiumtap/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kiumtapd:", err)
		stop()
		os.Exit(cli.ExitCode(err))
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

// Test hooks, nil but in tests: before the tap loop starts, and in it as a
// tap is recorded (a test blocks the loop there, as a deadlock would).
var testHookBeforeTapLoop, testHookTapped func()

// testHookEmu, nil but in tests, is given the emulated reader chip before
// the driver opens it.
var testHookEmu func(*rc522emu.Chip)

// errDemoDone ends the parts when the demo has played.
var errDemoDone = errors.New("the demo is done")

// run is kiumtapd. It returns nil when ctx ends (SIGINT, SIGTERM) and every
// part stopped cleanly, or when -demo played as scripted; otherwise the
// error that stopped it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	stdout, stderr = &syncWriter{w: stdout}, &syncWriter{w: stderr}
	fs := flag.NewFlagSet("kiumtapd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (TOML, as /etc/kiumtap/kiumtapd.toml; a *.json of earlier versions is still read)")
	check := fs.Bool("check", false, "check the configuration file and exit (0: good)")
	migrate := fs.String("migrate-config", "", "print an earlier version's JSON configuration `FILE` as TOML and exit")
	demo := fs.Bool("demo", false, "play a scripted session on the emulated reader and exit")
	verbose := fs.Bool("v", false, "log debug records (bad frames, retries), whatever log.level says")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: kiumtapd -config FILE [-v]\n       kiumtapd -config FILE -check\n       kiumtapd -migrate-config OLD.json > NEW.toml\n       kiumtapd -demo\n       kiumtapd -version\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h asked for the usage: printed
		}
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if *showVersion {
		cli.PrintVersion(stdout, "kiumtapd")
		return nil
	}
	if *migrate != "" {
		var old config.Config
		out, err := confile.Migrate(*migrate, &old)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}

	var cfg *config.Config
	var roster *firmware.Roster
	switch {
	case *demo:
		dir, err := os.MkdirTemp("", "kiumtapd-demo-")
		if err != nil {
			return fmt.Errorf("making the demo's directory: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg, roster = demoConfig(dir, time.Now())
	case *configPath != "":
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
		if *check {
			fmt.Fprintf(stdout, "%s: good (device %s, reader %s, store %s)\n", *configPath, cfg.DeviceID, cfg.Reader.Kind, cfg.Store)
			return nil
		}
	default:
		fs.Usage()
		return fmt.Errorf("%w: give -config FILE, or -demo", cli.ErrUsage)
	}
	if *verbose {
		cfg.Log.Level = "debug"
	}
	log := cfg.Logger(stderr)

	// Everything is opened before any part starts, so that a failure here
	// leaves nothing running.
	rf := cli.ReaderFlags{
		Kind: cfg.Reader.Kind, Timed: *demo, RxGain: cfg.Reader.RxGainDB, Clones: cfg.Reader.AllowClone,
		Poll: time.Duration(cfg.Reader.Poll),
		Board: pi.Options{SPI: cfg.Reader.SPI, RST: cfg.Reader.RST, IRQ: cfg.Reader.IRQ,
			Green: cfg.Reader.Green, Red: cfg.Reader.Red, Buzzer: cfg.Reader.Buzzer},
	}
	service.Status("starting: opening the store " + cfg.Store)
	clk := clock.New(clock.Options{})
	now := func() time.Time { return clk.Stamp().Time }
	st, err := store.Open(store.Options{Path: cfg.Store, DeviceID: cfg.DeviceID, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store %s: %w", cfg.Store, cerr))
		}
	}()
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
			if err := st.ApplyRoster(roster, now()); err != nil {
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
	if testHookEmu != nil && r.Emu != nil {
		testHookEmu(r.Emu)
	}
	var emu *localapi.Emulator
	if r.Emu != nil {
		// The emulated terminal's LEDs and buzzer are pins that go nowhere;
		// the console shows the screen and names the pattern.
		r.Pins = indicator.Pins{Green: &gpiotest.Pin{N: "GREEN"}, Red: &gpiotest.Pin{N: "RED"}, Buzzer: &gpiotest.Pin{N: "BUZZER"}}
		if emu, err = localapi.NewEmulator(localapi.EmulatorOptions{Field: r.Emu, Roster: st, Key: cfg.Key(), Cards: cfg.Reader.Cards}); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	// A reader that does not answer is shown, reported and retried by the
	// driver, with backoff: the store, the roster and the link keep
	// working, and systemd does not restart the daemon in a loop.
	reader := &readerState{since: now()}
	opts := rf.DevOptions()
	opts.Logger = log
	opts.WaitForChip = true
	opts.OnChange = func(err error) { reader.changed(err) }
	dev, err := rc522.New(r.Port, r.RST, r.IRQ, opts)
	if err != nil {
		return err
	}
	reader.init(dev.Up())
	if up, why := dev.Up(); !up {
		log.Error("THE CARD READER DOES NOT ANSWER: kiumtapd starts without it and keeps retrying. Check its wires and supply (docs/operations.md, troubleshooting)", "err", why)
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
	btn, err := openButtons(cfg, r, log)
	if err != nil {
		return err
	}

	metricsAt, err := metrics.Listen(cfg.Metrics)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	taps := make(chan tapped, 16)
	removed := make(chan rc522.Event, 16)
	var term *terminal.Terminal
	enrol := func(child, by string) ([]string, error) { return term.EnrolFor(child, by) }
	up, err := openUplink(cfg, st, clk, dev, enrol, log)
	if err != nil {
		return err
	}
	var showMu sync.Mutex // the tap loop and the reader's state both show
	show := func(f firmware.Feedback) {
		showMu.Lock()
		defer showMu.Unlock()
		if err := ind.Show(indicator.Pattern(f.Pattern)); err != nil {
			log.Error("LEDs and buzzer", "err", err)
		}
		if err := screen.Show(f.Lines); err != nil {
			log.Error("screen", "err", err)
		}
		if r.Emu != nil {
			fmt.Fprintf(stdout, "    screen: %-40s [%s]\n", strings.Join(f.Lines, " / "), f.Pattern)
		}
		if emu != nil {
			emu.Shown(f)
		}
	}
	reader.show, reader.lang, reader.log, reader.now = show, firmware.Language(cfg.Language), log, now
	sources := telemetry.Sources{
		Store:    st,
		Reader:   dev.Stats,
		ReaderUp: func() bool { up, _ := dev.Up(); return up },
		Synced:   func() bool { return clk.Stamp().Synced },
		Now:      now,
		Version:  cli.BuildVersion(),
	}
	if up != nil {
		sources.Link, sources.Uplink = up.Link, up.Stats
	}
	tele := telemetry.New(sources)
	term, err = terminal.New(terminal.Options{
		Store: st, Clock: clk, Key: cfg.Key(), RawUID: cfg.StoreRawUID,
		Settings: cfg.Settings(), Language: firmware.Language(cfg.Language), Logger: log,
		DiskWarnFree: mib(cfg.DiskWarnFree),
		Show:         show,
		Tapped: func(ev store.Event, dec firmware.Decision) {
			if testHookTapped != nil {
				testHookTapped()
			}
			tele.Tapped(dec)
			if up != nil {
				up.Notify()
			}
			fmt.Fprintf(stdout, "    event #%d %s (%s) %s\n", ev.Seq, dec.Outcome, dec.Reason, flags(dec.Flags))
			if *demo {
				select {
				case taps <- tapped{ev, dec}:
				case <-gctx.Done():
				}
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

	// part runs one part of the daemon in the group. A part that returns
	// while the group runs, error or not, stops the daemon with its name;
	// once the group stops, what parts return is only logged.
	part := func(name string, fn func(context.Context) error) {
		g.Go(func() error {
			err := fn(gctx)
			if gctx.Err() != nil {
				if err != nil && !errors.Is(err, context.Canceled) {
					log.Warn("stopped with an error", "part", name, "err", err)
				}
				return nil
			}
			if err == nil {
				err = errors.New("returned early without an error")
			}
			return fmt.Errorf("%s stopped: %w", name, err)
		})
	}
	events := make(chan rc522.Event, 16)
	toTerm := make(chan rc522.Event, 16)
	apiListening := make(chan struct{})
	part("the local API", func(ctx context.Context) error {
		var link func() uplink.Link
		if up != nil {
			link = up.Link
		}
		return localapi.ServeListening(ctx, cfg.Socket, localapi.NewHandler(localapi.Options{Store: st, Now: now, Link: link, Emulator: emu,
			Reader: func() localapi.Reader { return reader.state(dev.Stats().Recoveries) }}), apiListening)
	})
	part("the metrics", func(ctx context.Context) error { return metrics.Serve(ctx, metricsAt, tele.Registry, log) })
	// The watchdog is fed while the tap loop takes events and the store
	// answers; a missing reader does not starve it (the driver retries).
	part("the watchdog", func(ctx context.Context) error {
		return service.Watchdog(ctx, service.WatchdogOptions{Logger: log, Healthy: tele.Healthy, Checks: []service.Check{
			{Name: "the tap loop", Fn: term.Ping},
			{Name: "the store", Fn: st.Ping},
		}})
	})
	// Ready once the store is open, the roster loaded (above), the tap
	// loop takes events and kiumctl can ask.
	g.Go(func() error {
		for _, c := range []<-chan struct{}{term.Running(), apiListening} {
			select {
			case <-c:
			case <-gctx.Done():
				return nil
			}
		}
		rev := "no roster yet"
		if r, _, err := st.Roster(); err == nil {
			rev = fmt.Sprintf("roster revision %d", r.Revision)
		}
		if err := service.Ready(fmt.Sprintf("running: %s, %s, %s", cfg.DeviceID, rev, reader.summary())); err != nil {
			log.Warn("telling systemd kiumtapd is ready", "err", err)
		}
		reader.ready()
		<-gctx.Done()
		service.Stopping()
		return nil
	})
	if up != nil {
		part("the uplink", up.Run)
	}
	part("the reader", func(ctx context.Context) error { return dev.Run(ctx, events) })
	part("the LEDs and buzzer", ind.Run)
	part("the tap loop", func(ctx context.Context) error {
		if testHookBeforeTapLoop != nil {
			testHookBeforeTapLoop()
		}
		return term.Run(ctx, toTerm)
	})
	if btn != nil {
		part("the buttons", func(ctx context.Context) error { return btn.Run(ctx, term.Press) })
	}
	part("the reader's events", func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case ev := <-events:
				fmt.Fprintf(stdout, "%s  %-9s card % X\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Card.UID)
				if emu != nil {
					emu.Saw(ev)
				}
				if ev.Kind == rc522.Removed && *demo {
					select {
					case removed <- ev:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				select {
				case toTerm <- ev:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	})
	if *demo {
		g.Go(func() error {
			if err := playDemo(gctx, r.Emu, dev, st, taps, removed, stdout); err != nil {
				if gctx.Err() != nil {
					return nil // stopped: not the demo's failure
				}
				return err
			}
			return errDemoDone
		})
	}
	log.Info("kiumtapd running", "device", cfg.DeviceID, "reader", cfg.Reader.Kind, "socket", cfg.Socket, "version", cli.BuildVersion())
	err = g.Wait()
	if errors.Is(err, errDemoDone) {
		err = nil
	}
	if err == nil {
		log.Info("kiumtapd stopped")
	}
	return err
}

// openUplink makes the link to the portal when a broker is configured.
func openUplink(cfg *config.Config, st *store.Store, clk uplink.Stamper, dev *rc522.Dev, enrol func(child, by string) ([]string, error), log *slog.Logger) (*uplink.Uplink, error) {
	m := cfg.MQTT
	if len(m.URLs()) == 0 {
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
		Broker: m.Broker, Brokers: m.Brokers, Centre: m.CentreID, Device: cfg.DeviceID, Password: m.Password, TLS: tc, PortalKey: key,
		Store: st, Clock: clk, Window: m.Window, Heartbeat: time.Duration(m.Heartbeat), Version: cli.BuildVersion(), Logger: log,
		// Healthy while the chip answers.
		Reader: func() (bool, int) { up, _ := dev.Up(); return up, int(dev.Stats().Recoveries) },
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

// readerState is what kiumtapd knows of the card reader for the screen,
// the log, systemd's status line and kiumctl status. The driver tells it
// when the chip stops and starts answering (rc522.Options.OnChange).
type readerState struct {
	mu      sync.Mutex
	up      bool
	err     error
	since   time.Time
	started bool // ready: changes are shown on the screen

	show func(firmware.Feedback)
	lang firmware.Language
	log  *slog.Logger
	now  func() time.Time
}

// init takes the chip's state after New.
func (r *readerState) init(up bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.up, r.err = up, err
}

func (r *readerState) changed(err error) {
	r.mu.Lock()
	r.up, r.err, r.since = err == nil, err, r.now()
	started := r.started
	r.mu.Unlock()
	if err != nil {
		r.log.Error("THE CARD READER DOES NOT ANSWER: taps cannot be read; kiumtapd keeps retrying it. Check its wires and supply (docs/operations.md, troubleshooting)", "err", err)
		service.Status("running; CARD READER NOT ANSWERING: " + err.Error())
		if started {
			r.show(firmware.ReaderFaultFeedback(r.lang))
		}
		return
	}
	r.log.Info("the card reader answers again")
	service.Status("running; the card reader answers again")
	if started {
		r.show(firmware.ReaderBackFeedback(r.lang))
	}
}

// ready shows the reader's fault, if it has one, once the daemon runs.
func (r *readerState) ready() {
	r.mu.Lock()
	r.started = true
	up := r.up
	r.mu.Unlock()
	if !up {
		r.show(firmware.ReaderFaultFeedback(r.lang))
	}
}

func (r *readerState) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.up {
		return "card reader answering"
	}
	return "CARD READER NOT ANSWERING: " + r.err.Error()
}

func (r *readerState) state(recoveries uint64) localapi.Reader {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := localapi.Reader{Up: r.up, Since: r.since, Recoveries: recoveries}
	if r.err != nil {
		s.Error = r.err.Error()
	}
	return s
}
