// Command kiumbridge is the portal's peer of the terminals:
//
//	kiumbridge run -config FILE              ingest events, text parents, publish rosters
//	kiumbridge keygen -out FILE              make the roster-signing key; prints the public key for terminals
//	kiumbridge roster push -config FILE [-centre C] SOURCE.json|STAFF.csv
//	                                         check a roster source and hand it to the running bridge
//	kiumbridge status -config FILE [-json]    a running bridge's status: connection, counts, texts refused and why
//	kiumbridge texts -config FILE [-state failed] [-json]
//	                                         the text queue: what was sent, what failed and why
//	kiumbridge export -config FILE -centre C -month 2026-11 [-xlsx FILE]
//	                                         sessions and hourly occupancy, CSV on stdout or Excel
//
// texts and export read the store, which a running bridge holds: run them
// with the bridge stopped, or against a copy of the store.
//
// run also takes card bindings made at terminals into the roster sources
// and answers kiumctl's cards, enrol and revoke on its control socket
// (the config's "control"; default kiumbridge.sock beside the store, mode
// 0600).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/attendance"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/protocol"
)

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "kiumbridge:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: kiumbridge run|keygen|roster push|texts|export (see -h of each)", errUsage)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout)
	case "roster":
		if len(args) < 2 || args[1] != "push" {
			return fmt.Errorf("%w: kiumbridge roster push -config FILE SOURCE", errUsage)
		}
		return cmdPush(args[2:], stdout)
	case "texts":
		return cmdTexts(args[1:], stdout)
	case "status":
		return cmdStatus(args[1:], stdout)
	case "export":
		return cmdExport(args[1:], stdout)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// Config is kiumbridge's configuration file (JSON; unknown keys are errors).
type Config struct {
	Broker   string `json:"broker"`
	Username string `json:"username"` // default portal
	Password string `json:"password"`
	CA       string `json:"ca"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	// SigningKey is the file kiumbridge keygen wrote.
	SigningKey   string `json:"signing_key"`
	Store        string `json:"store"`
	Sources      string `json:"sources"`
	Group        string `json:"group"`
	Instances    int    `json:"instances"`
	AutoCheckOut string `json:"auto_check_out"` // text or hold
	// Control is the unix socket kiumctl's cards, enrol and revoke ask;
	// default kiumbridge.sock beside the store.
	Control string `json:"control"`
	// StopTimeout bounds a graceful stop on SIGTERM, e.g. "10s" (default).
	StopTimeout string `json:"stop_timeout"`
	stopTimeout time.Duration
	SMS         struct {
		Provider  string `json:"provider"` // console, solapi, nhn, webhook
		From      string `json:"from"`
		APIKey    string `json:"api_key"`    // solapi
		APISecret string `json:"api_secret"` // solapi
		AppKey    string `json:"app_key"`    // nhn
		SecretKey string `json:"secret_key"` // nhn
		URL       string `json:"url"`        // webhook; or the provider's base URL
		Secret    string `json:"secret"`     // webhook
	} `json:"sms"`
}

func loadConfig(path string) (*Config, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: -config FILE is required", errUsage)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(raw)
}

func parseConfig(raw []byte) (*Config, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var errs []error
	bad := func(k, f string, a ...any) {
		errs = append(errs, fmt.Errorf("config key %q: %s", k, fmt.Sprintf(f, a...)))
	}
	if c.Broker == "" {
		bad("broker", "required, e.g. tcp://127.0.0.1:1883")
	}
	if c.Store == "" {
		bad("store", "required: the bridge's database file")
	}
	if c.Sources == "" {
		bad("sources", "required: the directory of roster sources, CENTRE.json")
	}
	if c.SigningKey == "" {
		bad("signing_key", "required: make one with kiumbridge keygen")
	}
	if c.StopTimeout != "" {
		d, err := time.ParseDuration(c.StopTimeout)
		if err != nil || d <= 0 {
			bad("stop_timeout", "%q is not a positive duration such as 10s", c.StopTimeout)
		}
		c.stopTimeout = d
	}
	if c.Control == "" && c.Store != "" {
		c.Control = filepath.Join(filepath.Dir(c.Store), "kiumbridge.sock")
	}
	switch c.SMS.Provider {
	case "", "console":
	case "solapi":
		if c.SMS.APIKey == "" || c.SMS.APISecret == "" {
			bad("sms.api_key", "solapi needs api_key and api_secret")
		}
	case "nhn":
		if c.SMS.AppKey == "" || c.SMS.SecretKey == "" {
			bad("sms.app_key", "nhn needs app_key and secret_key")
		}
	case "webhook":
		if c.SMS.URL == "" {
			bad("sms.url", "webhook needs url")
		}
	default:
		bad("sms.provider", "%q is not console, solapi, nhn or webhook", c.SMS.Provider)
	}
	if c.SMS.Provider != "" && c.SMS.Provider != "console" && c.SMS.From == "" {
		bad("sms.from", "the registered sender number is required")
	}
	return &c, errors.Join(errs...)
}

func (c *Config) provider(stdout io.Writer) sms.Provider {
	switch c.SMS.Provider {
	case "solapi":
		return sms.NewSolapi(sms.SolapiOptions{APIKey: c.SMS.APIKey, APISecret: c.SMS.APISecret, BaseURL: c.SMS.URL})
	case "nhn":
		return sms.NewNHN(sms.NHNOptions{AppKey: c.SMS.AppKey, SecretKey: c.SMS.SecretKey, BaseURL: c.SMS.URL})
	case "webhook":
		return sms.NewWebhook(sms.WebhookOptions{URL: c.SMS.URL, Secret: c.SMS.Secret})
	}
	return sms.NewConsole(stdout)
}

func (c *Config) tls() (*tls.Config, error) { return cli.TLS(c.CA, c.Cert, c.Key) }

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

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	key, err := ReadKey(cfg.SigningKey)
	if err != nil {
		return err
	}
	tc, err := cfg.tls()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	st, err := bridge.OpenStore(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := bridge.New(bridge.Options{
		Broker: cfg.Broker, Username: cfg.Username, Password: cfg.Password, TLS: tc,
		Group: cfg.Group, Instances: cfg.Instances, Key: key, Store: st, SourceDir: cfg.Sources,
		Provider: cfg.provider(os.Stdout), From: cfg.SMS.From, AutoCheckOut: cfg.AutoCheckOut, Logger: log,
		StatusFile: statusFile(cfg), Control: cfg.Control, StopTimeout: cfg.stopTimeout,
	})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

func cmdKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "file for the private key (created, mode 0600)")
	if err := fs.Parse(args); err != nil || *out == "" {
		return fmt.Errorf("%w: kiumbridge keygen -out FILE", errUsage)
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

func cmdPush(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("roster push", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	centre := fs.String("centre", "", "centre ID (for a CSV staff list: the source it updates)")
	keyHex := fs.String("centre-key", "", "the centre's card key in hex (for a CSV with card UIDs)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("%w: kiumbridge roster push -config FILE [-centre C -centre-key HEX] SOURCE.json|STAFF.csv", errUsage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	src, err := source.Push(cfg.Sources, *centre, *keyHex, fs.Arg(0), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s handed to the bridge; it publishes the next revision\n", src.Summary())
	return nil
}

// readStore loads the config and opens its store for reading.
func readStore(cfgPath string) (*Config, *bridge.Store, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	st, err := bridge.OpenStoreReadOnly(cfg.Store)
	return cfg, st, err
}

func statusFile(cfg *Config) string { return cfg.Store + ".status.json" }

func cmdStatus(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	asJSON := fs.Bool("json", false, "JSON")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(statusFile(cfg))
	if err != nil {
		return fmt.Errorf("no status from a bridge (%w): is kiumbridge run going with this config?", err)
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	var st bridge.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("status file %s: %w", statusFile(cfg), err)
	}
	age := time.Since(st.Time).Round(time.Second)
	fmt.Fprintf(stdout, "bridge status of %s ago (written every 5 s; older means the bridge is not running)\n", age)
	fmt.Fprintf(stdout, "connected: %v; centres: %s\n", st.Connected, strings.Join(st.Centres, ", "))
	in := st.Stats.Ingest
	fmt.Fprintf(stdout, "events: %d stored, %d duplicates, %d beyond a gap, %d malformed, %d of unknown centres\n", in.Stored, in.Duplicates, in.OutOfOrder, in.Malformed, in.UnknownCentre)
	fmt.Fprintf(stdout, "texts: %d sent, %d refused, %d retries; rosters published: %d\n", st.Stats.TextsSent, st.Stats.TextsFailed, st.Stats.TextRetries, st.Stats.Published)
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
	return nil
}

func cmdTexts(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("texts", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	state := fs.String("state", "", "only texts in this state: pending, sending, sent, failed, held")
	asJSON := fs.Bool("json", false, "JSON lines")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	_, st, err := readStore(*cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	counts := map[string]int{}
	err = st.Jobs(func(j bridge.Job) bool {
		counts[j.State]++
		if *state != "" && j.State != *state {
			return true
		}
		if *asJSON {
			raw, _ := json.Marshal(j)
			fmt.Fprintln(stdout, string(raw))
			return true
		}
		fmt.Fprintf(stdout, "%-28s %-8s %-15s %-9s %s\n", j.ID, j.State, j.Kind, j.Child, j.Reason)
		return true
	})
	if !*asJSON {
		fmt.Fprintf(stdout, "sent %d, failed %d, pending %d, in doubt %d, held %d\n", counts[bridge.JobSent], counts[bridge.JobFailed], counts[bridge.JobPending], counts[bridge.JobSending], counts[bridge.JobHeld])
	}
	return err
}

func cmdExport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file")
	centre := fs.String("centre", "", "centre ID")
	month := fs.String("month", "", "month, e.g. 2026-11")
	xlsx := fs.String("xlsx", "", "write an Excel file here instead of CSV on stdout")
	if err := fs.Parse(args); err != nil || *centre == "" || *month == "" {
		return fmt.Errorf("%w: kiumbridge export -config FILE -centre C -month YYYY-MM [-xlsx FILE]", errUsage)
	}
	if _, err := time.Parse("2006-01", *month); err != nil {
		return fmt.Errorf("-month %q: want YYYY-MM", *month)
	}
	cfg, st, err := readStore(*cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	var evs []protocol.Event
	if err := st.Events(*centre, func(e protocol.Event) bool {
		if firmware.DateOf(e.Time).String()[:7] == *month {
			evs = append(evs, e)
		}
		return true
	}); err != nil {
		return err
	}
	names := map[string]string{}
	if src, err := source.Load(filepath.Join(cfg.Sources, *centre+".json")); err == nil {
		for _, c := range src.Roster.Children {
			names[c.ID] = c.Name
		}
	}
	sessions := attendance.Sessions(evs)
	occ := attendance.Occupancies(sessions)
	if *xlsx != "" {
		f, err := os.Create(*xlsx)
		if err != nil {
			return err
		}
		if err := attendance.WriteXLSX(f, *month, sessions, occ, names); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := attendance.WriteCSV(stdout, sessions, names); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return attendance.WriteOccupancyCSV(stdout, occ)
}
