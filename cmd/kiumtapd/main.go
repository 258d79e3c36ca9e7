// Command kiumtapd runs on the terminal: it reads cards and gives feedback.
// Later issues add the tap decisions, the store and the sync to the portal.
//
//	kiumtapd [-reader pi|emu] [-spi SPI0.0 -rst GPIO25 -irq GPIO24 ...]
//	kiumtapd -demo
//
// -demo plays a scripted session on the emulated reader with real air
// timing (cards tapped, held, two at once, a chip that wedges) and exits.
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
	"syscall"

	"periph.io/x/conn/v3/gpio/gpiotest"

	"kiumtap/hal/indicator"
	"kiumtap/hal/rc522"
	"kiumtap/internal/cli"
)

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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiumtapd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf cli.ReaderFlags
	rf.Register(fs)
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
	if *demo {
		rf.Kind, rf.Timed = "emu", true
	}
	r, err := rf.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	if r.Emu != nil {
		// The emulated terminal's LEDs and buzzer are pins that go nowhere;
		// the console says what they show.
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
	fmt.Fprintf(stdout, "kiumtapd: %s\n", dev)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan rc522.Event, 16)
	errc := make(chan error, 3)
	go func() { errc <- dev.Run(ctx, events) }()
	go func() { errc <- ind.Run(ctx) }()
	taps := make(chan rc522.Event, 16) // what the demo script sees
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				fmt.Fprintf(stdout, "%s  %-9s UID % X (ATQA % X, SAK %#02x)\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Card.UID, ev.Card.ATQA, ev.Card.SAK)
				if ev.Kind == rc522.Presented {
					ind.Show(indicator.OK)
					fmt.Fprintf(stdout, "              feedback: %s\n", indicator.OK)
				}
				if *demo {
					taps <- ev
				}
			}
		}
	}()
	if *demo {
		err := playDemo(ctx, r.Emu, dev, taps, stdout)
		cancel()
		return err
	}
	if r.Emu != nil {
		fmt.Fprintln(stdout, "kiumtapd: emulated reader with an empty field; try -demo")
	}
	<-ctx.Done()
	return ctx.Err()
}
