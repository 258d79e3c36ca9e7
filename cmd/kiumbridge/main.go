// Command kiumbridge is the portal's peer of the terminals:
//
//	kiumbridge run -config FILE              ingest events, text parents, publish rosters
//	kiumbridge keygen -out FILE              make the roster-signing key; prints the public key for the terminals
//	kiumbridge roster push -config FILE [-centre C -centre-key HEX] SOURCE.json...|CHILDREN.csv
//	                                         check roster sources and hand them to the running bridges
//	kiumbridge status -config FILE [-json]   the running bridge: connection, counts, texts refused and why;
//	                                         exit status 1 when no bridge runs
//	kiumbridge texts -config FILE [-state failed] [-json]
//	                                         the text queue: what was sent, what failed and why
//	kiumbridge export -config FILE -centre C -month 2026-11 [-xlsx FILE]
//	                                         sessions and hourly occupancy, CSV (with a UTF-8 BOM, for Excel) on stdout, or Excel
//	kiumbridge user add|passwd|disable|list -config FILE [-centre C...] [NAME]
//	                                         staff accounts of the staff page (web.listen)
//	kiumbridge config check -config FILE     check a configuration file
//	kiumbridge config migrate OLD.json       print an earlier version's JSON configuration as TOML
//	kiumbridge help [COMMAND]                the commands, or a command's flags
//	kiumbridge -version
//
// status, texts and export ask the running bridge on its control socket
// (the config's "control"; default kiumbridge.sock beside the store, mode
// 0600), which holds the store: the bridge keeps texting parents. With
// no bridge answering there, texts and export read the store themselves,
// and say so on stderr; status says the bridge is not running and exits
// 1.
//
// run also takes card bindings made at terminals into the roster sources
// and answers kiumctl's cards, enrol and revoke on its control socket. It
// waits for a broker it cannot reach (500 ms doubling to 30 s, each
// attempt logged) and stops at once, with the broker's answer, on one that
// refuses it (a wrong password or certificate).
//
// run serves Prometheus metrics on the config's "metrics" (package
// portal/bridge/telemetry names them) and speaks to systemd as a
// Type=notify unit: READY=1 once the store is open and the control socket
// answers, whether or not the broker is reachable yet (the status line
// says which), WATCHDOG=1 while the store and the bridge answer, and
// STOPPING=1 as a graceful stop begins.
//
// Flags may come before or after the arguments; -h on any command shows
// its flags.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/internal/confile"
	"kiumtap/internal/metrics"
	"kiumtap/internal/service"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/portal/bridge"
	"kiumtap/portal/bridge/telemetry"
	"kiumtap/portal/config"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	portalstore "kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/store/pgstore"
	"kiumtap/portal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, context.Canceled) {
		err = nil // a signal: run stopped gracefully
	}
	if code := cli.ExitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, "kiumbridge:", err)
		os.Exit(code)
	}
}

const usage = `usage: kiumbridge COMMAND [flags] [arguments]

The portal's peer of the terminals: it stores their events, texts parents,
publishes rosters and answers kiumctl.

Commands:
  run            ingest events, text parents, publish rosters, answer kiumctl
  keygen         make the roster-signing key; print the public key for the terminals
  roster push    check a roster source (or a centre's list of children, CSV) and
                 hand it to the bridge, which publishes the next revision
  status         the running bridge: broker connection, counts, texts refused and
                 why, terminals stalled; exit status 1 when no bridge runs
  texts          the text queue: what was sent, what failed and why
  export         a centre's month: each child's sessions and the hourly occupancy,
                 as CSV or Excel
  ca init        make the district's certificate authority (ca.pem, ca.key)
  ca broker      issue the broker's certificate for its host names (SANs)
  device issue   issue a terminal's certificate (its identity at the broker) and
                 print its config lines and its block of the broker's ACL
  device acl     write the broker's whole ACL for a list of CENTRE/DEVICE
  user           staff accounts of the staff page: add, passwd, disable, list
  config check   check a configuration file and exit (0: good)
  config migrate print an earlier version's JSON configuration as TOML
  help COMMAND   a command's flags (as kiumbridge COMMAND -h)

Every command but keygen, ca, device and config migrate takes -config
FILE, kiumbridge's configuration (TOML; the package installs
/etc/kiumbridge/kiumbridge.toml, every key documented).
kiumbridge -version prints the version.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (kiumbridge help lists them)", cli.ErrUsage)
	}
	cmd, rest := args[0], args[1:]
	switch {
	case cli.IsVersion(cmd):
		cli.PrintVersion(stdout, "kiumbridge")
		return nil
	case cmd == "help" && len(rest) > 0:
		return run(ctx, append(slices.Clone(rest), "-h"), stdout, stderr)
	case cli.IsHelp(cmd):
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "keygen":
		return cmdKeygen(rest, stdout, stderr)
	case "roster":
		switch {
		case len(rest) > 0 && rest[0] == "push":
			return cmdPush(rest[1:], stdout, stderr)
		case len(rest) > 0 && cli.IsHelp(rest[0]):
			return cmdPush([]string{"-h"}, stdout, stderr)
		}
		return fmt.Errorf("%w: kiumbridge roster push -config FILE SOURCE (roster has no other command)", cli.ErrUsage)
	case "texts":
		return cmdTexts(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "export":
		return cmdExport(ctx, rest, stdout, stderr)
	case "ca":
		return cmdCA(rest, stdout, stderr)
	case "device":
		return cmdDevice(rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "user":
		return cmdUser(ctx, rest, stdin, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", cli.ErrUsage, cmd)
}

// noArgs refuses positional arguments to a command that takes none.
func noArgs(fs interface{ Args() []string }, synopsis string) error {
	if a := fs.Args(); len(a) > 0 {
		return fmt.Errorf("%w: unexpected %q: %s", cli.ErrUsage, a, synopsis)
	}
	return nil
}

// Config is kiumbridge's configuration (portal/config).
type Config = config.Config

func loadConfig(path string) (*Config, error) { return config.Load(path) }

// cmdConfig checks a configuration, or migrates an earlier version's.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge config check -config FILE | kiumbridge config migrate OLD.json > NEW.toml"
	if len(args) == 0 || cli.IsHelp(args[0]) {
		fmt.Fprintln(stderr, "usage: "+synopsis)
		if len(args) > 0 {
			return nil
		}
		return fmt.Errorf("%w: %s", cli.ErrUsage, synopsis)
	}
	switch args[0] {
	case "check":
		fs := cli.NewFlagSet("config check", "kiumbridge config check -config FILE", stderr)
		cfgPath := fs.String("config", "", "configuration file")
		if err := cli.Parse(fs, args[1:]); err != nil {
			return err
		}
		if err := noArgs(fs, synopsis); err != nil {
			return err
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		if _, err := ReadKey(cfg.SigningKey); err != nil {
			return err
		}
		if _, err := cfg.TLS(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: good (broker %s, store %s, texts by %s)\n", *cfgPath, strings.Join(cfg.URLs(), ", "), storeName(cfg), cfg.SMS.Provider)
		return nil
	case "migrate":
		if len(args) != 2 {
			return fmt.Errorf("%w: name one file: kiumbridge config migrate OLD.json > NEW.toml", cli.ErrUsage)
		}
		var old Config
		out, err := confile.Migrate(args[1], &old)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	return fmt.Errorf("%w: unknown config command %q: %s", cli.ErrUsage, args[0], synopsis)
}

// ReadKey reads a signing key file written by keygen: the base64 seed.
func ReadKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a base64 Ed25519 seed (make one with kiumbridge keygen)", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge run -config FILE"
	fs := cli.NewFlagSet("run", synopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	key, err := ReadKey(cfg.SigningKey)
	if err != nil {
		return err
	}
	tc, err := cfg.TLS()
	if err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	// Opened before anything starts: a port in use stops the start here,
	// saying which key to change.
	metricsAt, err := metrics.Listen(cfg.Metrics)
	if err != nil {
		return err
	}
	if metricsAt != nil {
		defer metricsAt.Close()
	}
	webAt, err := listenWeb(cfg)
	if err != nil {
		return err
	}
	if webAt != nil {
		defer webAt.Close()
	}
	service.Status("starting: opening the store " + storeName(cfg))
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	provider := cfg.Provider(stdout)
	if err := checkTemplates(ctx, provider, cfg, log); err != nil {
		return err
	}
	var b *bridge.Bridge // set below, before the metrics are served
	page, err := web.New(web.Options{Accounts: &web.Accounts{Reg: st}, Events: st, Texts: st, Secure: cfg.Web.Secure(), Logger: log}.
		ServedBy(func() web.Bridge { return b }))
	if err != nil {
		return err
	}
	tele := telemetry.New(telemetry.Sources{
		Status:    func() api.Status { return b.Status() },
		Terminals: func() (int, int) { return b.TerminalCount() },
		Queue:     func() (portalstore.Queue, error) { return st.Queue(context.Background()) },
		Provider:  provider.Name(),
		Version:   cli.BuildVersion(),
	})
	b, err = bridge.New(bridge.Options{
		ClientID: cfg.ClientID, Broker: cfg.Broker, Brokers: cfg.Brokers, Username: cfg.Username, Password: cfg.Password, TLS: tc,
		Group: cfg.Group, Instances: cfg.Instances, Key: key, DB: st, Sources: sourcesOf(cfg, st),
		Provider: provider, From: cfg.SMS.From, AutoCheckOut: cfg.AutoCheckOut, Logger: log,
		Control: cfg.Control, StopTimeout: time.Duration(cfg.StopTimeout),
		Attempted: tele.Texted, Stored: page.Notify,
	})
	if err != nil {
		return err
	}
	// The bridge stops everything when it returns (a broker that refuses
	// it); any other part that fails stops the bridge, gracefully.
	g, gctx := errgroup.WithContext(ctx)
	hook := testHookBeforeBridge
	g.Go(func() error {
		if hook != nil {
			hook()
		}
		return b.Run(gctx)
	})
	g.Go(func() error { return metrics.Serve(gctx, metricsAt, tele.Registry, log) })
	if webAt != nil {
		g.Go(func() error { return serveWeb(gctx, webAt, page, cfg, log) })
	}
	// The watchdog is fed while the store answers and the bridge's state
	// is not locked; a broker out of reach does not starve it (the bridge
	// retries it, a restart would not help).
	g.Go(func() error {
		return service.Watchdog(gctx, service.WatchdogOptions{Logger: log, Healthy: tele.Healthy, Checks: []service.Check{
			{Name: "the store", Fn: st.Ping},
			{Name: "the bridge", Fn: b.Ping},
		}})
	})
	g.Go(func() error {
		tellSystemd(gctx, b, cfg, log)
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return ctx.Err() // a signal: the bridge stopped gracefully
	}
	return err
}

// testHookBeforeBridge, if set, runs before the bridge starts: tests hold
// it there.
var testHookBeforeBridge func()

// tellSystemd says READY=1 once the store is open (before it runs) and the
// bridge answers on its control socket. It does not wait for the broker,
// which the bridge keeps trying to reach: the status line says whether it
// is connected, and changes as the connection comes and goes. STOPPING=1
// goes as soon as ctx ends.
func tellSystemd(ctx context.Context, b *bridge.Bridge, cfg *Config, log *slog.Logger) {
	defer service.Stopping()
	select {
	case <-b.Listening():
	case <-ctx.Done():
		return
	}
	connected := b.Connected()
	if err := service.Ready(runningStatus(cfg, len(b.Status().Centres), connected)); err != nil {
		log.Warn("telling systemd kiumbridge is ready", "err", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c := b.Connected(); c != connected {
			connected = c
			service.Status(runningStatus(cfg, len(b.Status().Centres), c))
		}
	}
}

// runningStatus is systemd's status line of a running bridge.
func runningStatus(cfg *Config, centres int, connected bool) string {
	urls := strings.Join(cfg.URLs(), ", ")
	broker := "broker " + urls + " connected"
	if !connected {
		broker = "BROKER " + urls + " NOT CONNECTED: retrying (the log says why)"
	}
	return fmt.Sprintf("running: centres %d, control socket %s; %s", centres, cfg.Control, broker)
}

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge keygen -out FILE"
	fs := cli.NewFlagSet("keygen", synopsis, stderr)
	out := fs.String("out", "", "file for the private key (created, mode 0600; an existing file is never overwritten)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: -out is required: %s", cli.ErrUsage, synopsis)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w (an existing key is never overwritten)", err)
	}
	fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed()))
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "portal_key for the terminals' mqtt config: %s\n", base64.StdEncoding.EncodeToString(pub))
	return nil
}

func cmdPush(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge roster push -config FILE [-centre C -centre-key HEX] SOURCE.json...|CHILDREN.csv"
	fs := cli.NewFlagSet("roster push", synopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	centre := fs.String("centre", "", "centre ID (for a CSV list of children: the source it updates)")
	keyHex := fs.String("centre-key", "", "the centre's card key in hex, its terminals' centre_key (for a CSV with card UIDs)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	switch {
	case len(files) == 0:
		return fmt.Errorf("%w: name a file: %s", cli.ErrUsage, synopsis)
	case len(files) > 1 && (*centre != "" || slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(strings.ToLower(f), ".csv") })):
		return fmt.Errorf("%w: several files are JSON sources, each of its own centre: push a CSV list (or with -centre) alone", cli.ErrUsage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var srcs source.Sources = source.Dir(cfg.Sources)
	if cfg.Database != "" {
		// The sources are the database's: every instance reads them there.
		db, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer db.Close()
		srcs = source.Stored(db)
	}
	var errs []error
	for _, f := range files {
		src, err := source.PushTo(ctx, srcs, *centre, *keyHex, f, time.Now())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		fmt.Fprintf(stdout, "%s handed to the bridge (%s); it publishes the next revision\n", src.Summary(), where(cfg))
	}
	return errors.Join(errs...)
}

// sourcesOf is where the configured bridge keeps its roster sources: the
// database, with one; else the sources directory.
func sourcesOf(cfg *Config, st portalstore.Store) source.Sources {
	if cfg.Database != "" {
		return source.Stored(st)
	}
	return source.Dir(cfg.Sources)
}

// where says where the sources are, for messages.
func where(cfg *Config) string {
	if cfg.Database != "" {
		return "in the database"
	}
	return "in " + cfg.Sources
}

// errNotRunning: no bridge answers on the config's control socket.
var errNotRunning = errors.New("the bridge is not running")

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge status -config FILE [-json]"
	fs := cli.NewFlagSet("status", synopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var st api.Status
	if err := api.Ask(ctx, cfg.Control, http.MethodGet, "/status", nil, &st); err != nil {
		if errors.Is(err, api.ErrNoBridge) {
			return fmt.Errorf("%w: %w; start it: kiumbridge run -config %s", errNotRunning, err, *cfgPath)
		}
		return fmt.Errorf("the bridge's status: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "kiumbridge is running (it answered on %s)\n", cfg.Control)
	conn := "connected: true"
	if !st.Connected {
		conn = "connected: false (it is trying to reach the broker: its log says why)"
	}
	fmt.Fprintf(stdout, "%s; centres: %s\n", conn, strings.Join(st.Centres, ", "))
	if len(st.Brokers) > 1 {
		for _, l := range st.Brokers {
			state := "connected"
			if !l.Connected {
				state = "NOT CONNECTED (retrying; terminals on it fail over to another)"
			}
			fmt.Fprintf(stdout, "broker %s: %s\n", l.URL, state)
		}
	}
	in := st.Stats.Ingest
	fmt.Fprintf(stdout, "events: %d stored, %d duplicates, %d beyond a gap, %d malformed, %d of unknown centres\n", in.Stored, in.Duplicates, in.OutOfOrder, in.Malformed, in.UnknownCentre)
	fmt.Fprintf(stdout, "texts: %d sent, %d refused, %d retries; rosters published: %d\n", st.Stats.TextsSent, st.Stats.TextsFailed, st.Stats.TextRetries, st.Stats.Published)
	if by := st.Stats.TextsBy; len(by) > 0 {
		fmt.Fprintf(stdout, "texts sent by channel since the start: %s (%d fell back from AlimTalk to SMS/LMS)\n", channelCounts(by), st.Stats.TextsFellBack)
	}
	for _, j := range st.Failed {
		fmt.Fprintf(stdout, "refused: %s child %s to %s: %s\n", j.ID, j.Child, sms.MaskNumber(j.To), j.Reason)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(stdout, "EVENTS REFUSED: terminal %s (%s), %d message(s) since %s, from event %d: %s. The terminal keeps them and was told; fix the cause and they flow.\n",
			r.Device, r.Centre, r.Count, r.Since.In(firmware.KST).Format("2006-01-02 15:04:05"), r.Seq, r.Reason)
	}
	for _, g := range st.Stalled {
		fmt.Fprintf(stdout, "STALLED: terminal %s (%s, log %s): the portal has events up to %d, the terminal sends from %d; events %d..%d are lost at the portal (a store restored from a backup?). Look, then: kiumctl gap accept -centre %s -device %s -through %d\n",
			g.Device, g.Centre, g.Log, g.Last, g.Lowest, g.Last+1, g.Lowest-1, g.Centre, g.Device, g.Lowest-1)
	}
	for _, a := range st.NotArrived {
		told := "staff only"
		if a.Told > 0 {
			told = fmt.Sprintf("%d guardian message(s) queued", a.Told)
		}
		fmt.Fprintf(stdout, "NOT ARRIVED (미등원): %s (%s, child %s), booked %s, no arrival by %s; %s. Absent today? kiumctl absent -centre %s -child %s\n",
			a.Name, a.Centre, a.Child, a.Window, a.Due.In(firmware.KST).Format("15:04"), told, a.Centre, a.Child)
	}
	return nil
}

// ask asks the running bridge on the config's control socket. When no
// bridge answers there, it says so on stderr and reads the store with
// fallback instead; it also says when the bridge answered.
func ask(ctx context.Context, cfg *Config, stderr io.Writer, path string, into any, fallback func(portalstore.Store) error) error {
	err := api.Ask(ctx, cfg.Control, http.MethodGet, path, nil, into)
	if err == nil {
		fmt.Fprintf(stderr, "kiumbridge: asked the running bridge (control socket %s)\n", cfg.Control)
		return nil
	}
	if !errors.Is(err, api.ErrNoBridge) {
		return err
	}
	fmt.Fprintf(stderr, "kiumbridge: no bridge answers on %s: reading the store %s directly\n", cfg.Control, storeName(cfg))
	if cfg.Database != "" {
		db, err := pgstore.Open(ctx, cfg.Database)
		if err != nil {
			return err
		}
		defer db.Close()
		return fallback(db)
	}
	st, err := boltstore.OpenReadOnly(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	return fallback(st.Contract())
}

func cmdTexts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge texts -config FILE [-state STATE] [-json]"
	fs := cli.NewFlagSet("texts", synopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	state := fs.String("state", "", "only texts in this state: "+strings.Join(api.JobStates, ", "))
	asJSON := fs.Bool("json", false, "JSON lines, one text a line")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	if *state != "" && !slices.Contains(api.JobStates, *state) {
		return fmt.Errorf("%w: -state %q: want one of %s", cli.ErrUsage, *state, strings.Join(api.JobStates, ", "))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var v *api.TextsView
	err = ask(ctx, cfg, stderr, "/texts?"+url.Values{"state": {*state}}.Encode(), &v, func(st portalstore.Store) (err error) {
		v, err = bridge.Texts(st, *state)
		return err
	})
	if err != nil {
		return err
	}
	for _, j := range v.Texts {
		if *asJSON {
			raw, err := json.Marshal(j)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(raw))
			continue
		}
		channel := j.Channel
		switch {
		case j.Reporting:
			channel = "alimtalk (delivery being looked up)"
		case j.Fallback != "" && j.Channel != sms.ChannelAlimTalk:
			channel = j.Channel + " (fell back from alimtalk: " + j.Fallback + ")"
		case j.Fallback != "":
			channel += " (" + j.Fallback + ")"
		}
		fmt.Fprintf(stdout, "%-28s %-8s %-15s %-9s %s", j.ID, j.State, j.Kind, j.Child, channel)
		if j.Reason != "" {
			fmt.Fprintf(stdout, " %s", j.Reason)
		}
		fmt.Fprintln(stdout)
	}
	if !*asJSON {
		c := v.Counts
		fmt.Fprintf(stdout, "sent %d, failed %d, pending %d, sending %d, held %d\n", c[portalstore.JobSent], c[portalstore.JobFailed], c[portalstore.JobPending], c[portalstore.JobSending], c[portalstore.JobHeld])
		for _, m := range slices.Sorted(maps.Keys(v.Months)) {
			by := v.Months[m]
			fb := by["fallback"]
			delete(by, "fallback")
			fmt.Fprintf(stdout, "sent in %s by channel: %s (%d fell back from AlimTalk)\n", m, channelCounts(by), fb)
		}
	}
	return nil
}

// channelCounts writes counts by channel, "alimtalk 3, sms 1".
func channelCounts(by map[string]int) string {
	var parts []string
	for _, ch := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s %d", ch, by[ch]))
	}
	return strings.Join(parts, ", ")
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge export -config FILE -centre C -month YYYY-MM [-xlsx FILE]"
	fs := cli.NewFlagSet("export", synopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	centre := fs.String("centre", "", "centre ID (required)")
	month := fs.String("month", "", "month, e.g. 2026-11 (required)")
	xlsx := fs.String("xlsx", "", "write an Excel file here instead of CSV on stdout")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	if *centre == "" || *month == "" {
		return fmt.Errorf("%w: -centre and -month are required: %s", cli.ErrUsage, synopsis)
	}
	if _, err := time.Parse("2006-01", *month); err != nil {
		return fmt.Errorf("%w: -month %q: want YYYY-MM, e.g. 2026-11", cli.ErrUsage, *month)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var v *api.ExportView
	err = ask(ctx, cfg, stderr, "/export?"+url.Values{"centre": {*centre}, "month": {*month}}.Encode(), &v, func(st portalstore.Store) (err error) {
		v, err = bridge.ExportStore(st, sourcesOf(cfg, st), *centre, *month)
		return err
	})
	if err != nil {
		return err
	}
	if *xlsx == "" {
		return attendance.WriteReport(stdout, v.Sessions, v.Occupancy, v.Names)
	}
	f, err := os.Create(*xlsx)
	if err != nil {
		return err
	}
	if err := attendance.WriteXLSX(f, *month, v.Sessions, v.Occupancy, v.Names); err != nil {
		f.Close()
		os.Remove(*xlsx)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(*xlsx)
		return fmt.Errorf("writing %s: %w", *xlsx, err)
	}
	return nil
}

// storeName says where the bridge keeps its data, without a password.
func storeName(cfg *Config) string {
	if cfg.Database == "" {
		return cfg.Store
	}
	if u, err := url.Parse(cfg.Database); err == nil && u.Host != "" {
		return "PostgreSQL " + u.Redacted()
	}
	return "PostgreSQL (database)"
}

// openStore opens the configured store: PostgreSQL (schema migrated to
// this version first) or the bbolt file.
func openStore(ctx context.Context, cfg *Config) (portalstore.Store, error) {
	if cfg.Database != "" {
		db, err := pgstore.Open(ctx, cfg.Database)
		if err != nil {
			return nil, fmt.Errorf("%w (config key database)", err)
		}
		return db, nil
	}
	st, err := boltstore.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	return st.Contract(), nil
}

// checkTemplates checks the AlimTalk templates at the provider before
// anything starts: one that does not fit (unknown, not approved, a
// variable kiumbridge cannot fill) stops the start, naming it; a provider
// out of reach is only logged (the texts retry).
func checkTemplates(ctx context.Context, p sms.Provider, cfg *Config, log *slog.Logger) error {
	tc, ok := p.(sms.TemplateChecker)
	if !ok || len(cfg.AlimTalk.Templates) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := tc.CheckTemplates(ctx)
	var te *sms.TemplateError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("%w: alimtalk.templates: %w", confile.ErrConfig, err)
	case err != nil:
		log.Warn("kiumbridge: the AlimTalk templates could not be checked now; messages go anyway, and one that does not fit fails with the provider's reason", "err", err)
	default:
		log.Info("kiumbridge: the AlimTalk templates are approved and fit", "templates", len(cfg.AlimTalk.Templates))
	}
	return nil
}
