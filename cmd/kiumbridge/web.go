package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"kiumtap/internal/cli"
	"kiumtap/portal/api"
	"kiumtap/portal/web"
)

// listenWeb opens the staff page's address before anything starts: a
// port in use stops the start here, saying which key to change.
func listenWeb(cfg *Config) (net.Listener, error) {
	if cfg.Web.Listen == "off" {
		return nil, nil
	}
	l, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("the staff page: listening on %s: %w (another program on that port? set web.listen to another host:port, or \"off\")", cfg.Web.Listen, err)
	}
	return l, nil
}

// serveWeb serves the staff page on l until ctx ends.
func serveWeb(ctx context.Context, l net.Listener, h http.Handler, cfg *Config, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(c) // live boards end with their connections
		srv.Close()
	}()
	log.Info("kiumbridge: the staff page answers", "listen", l.Addr().String(), "tls", cfg.Web.Cert != "")
	var err error
	if cfg.Web.Cert != "" {
		err = srv.ServeTLS(l, cfg.Web.Cert, cfg.Web.Key)
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("the staff page: %w", err)
}

// centreList is a flag given once per centre.
type centreList []string

func (l *centreList) String() string { return strings.Join(*l, ",") }

func (l *centreList) Set(v string) error {
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			*l = append(*l, c)
		}
	}
	return nil
}

const userSynopsis = `kiumbridge user add -config FILE -centre C [-centre C2...] NAME   (the password on stdin)
kiumbridge user passwd -config FILE NAME                          (the password on stdin)
kiumbridge user disable -config FILE NAME
kiumbridge user list -config FILE`

// cmdUser manages the staff page's accounts, through the running bridge
// (its control socket), or the store itself when none runs.
func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || cli.IsHelp(args[0]) {
		fmt.Fprintln(stderr, "usage:\n"+userSynopsis)
		if len(args) > 0 {
			return nil
		}
		return fmt.Errorf("%w: name a user command: add, passwd, disable or list", cli.ErrUsage)
	}
	sub := args[0]
	fs := cli.NewFlagSet("user "+sub, userSynopsis, stderr)
	cfgPath := fs.String("config", "", "configuration file")
	var centres centreList
	if sub == "add" {
		fs.Var(&centres, "centre", "a centre the user looks after (again for several: a district operator)")
	}
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	switch sub {
	case "add", "passwd", "disable":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: name one user: %s", cli.ErrUsage, userSynopsis)
		}
	case "list":
		if err := noArgs(fs, userSynopsis); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown user command %q: %s", cli.ErrUsage, sub, userSynopsis)
	}
	if sub == "add" && len(centres) == 0 {
		return fmt.Errorf("%w: name the centres the user looks after (-centre C, again for several): %s", cli.ErrUsage, userSynopsis)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	req := api.UserRequest{Name: fs.Arg(0), Centres: centres, By: whoAmI()}
	if sub == "add" || sub == "passwd" {
		if req.Password, err = readPassword(stdin); err != nil {
			return err
		}
	}
	path := map[string]string{"add": "/users", "passwd": "/users/passwd", "disable": "/users/disable"}[sub]
	var users []api.UserView
	var into any = &struct{}{}
	if sub == "list" {
		into = &users
	}
	err = api.Ask(ctx, cfg.Control, methodOf(sub), cmpStr(path, "/users"), bodyOf(sub, req), into)
	if err == nil && sub != "list" {
		fmt.Fprintf(stderr, "kiumbridge: asked the running bridge (control socket %s)\n", cfg.Control)
	}
	if errors.Is(err, api.ErrNoBridge) {
		fmt.Fprintf(stderr, "kiumbridge: no bridge answers on %s: changing the store %s directly\n", cfg.Control, storeName(cfg))
		st, oerr := openStore(ctx, cfg)
		if oerr != nil {
			return oerr
		}
		defer st.Close()
		acc := &web.Accounts{Reg: st}
		switch sub {
		case "add":
			err = acc.Add(ctx, req.Name, req.Password, req.Centres, req.By)
		case "passwd":
			err = acc.SetPassword(ctx, req.Name, req.Password, req.By)
		case "disable":
			err = acc.Disable(ctx, req.Name, req.By)
		case "list":
			var us []web.User
			us, err = acc.Users(ctx)
			for _, u := range us {
				users = append(users, api.UserView{Name: u.Name, Centres: u.Centres, Disabled: u.Disabled, Locked: u.Locked, Created: u.Created})
			}
		}
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", sub, err)
	}
	switch sub {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tCENTRES\tSTATE\tSINCE")
		for _, u := range users {
			state := "active"
			switch {
			case u.Disabled:
				state = "disabled"
			case time.Now().Before(u.Locked):
				state = "locked until " + u.Locked.Local().Format("15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Centres, ","), state, u.Created.Local().Format("2006-01-02"))
		}
		return tw.Flush()
	case "add":
		fmt.Fprintf(stdout, "user %s added for %s; the staff page is at %s\n", req.Name, strings.Join(req.Centres, ", "), cfg.Web.Listen)
	case "passwd":
		fmt.Fprintf(stdout, "user %s: password set, its sessions ended\n", req.Name)
	case "disable":
		fmt.Fprintf(stdout, "user %s disabled, its sessions ended\n", req.Name)
	}
	return nil
}

func methodOf(sub string) string {
	if sub == "list" {
		return http.MethodGet
	}
	return http.MethodPost
}

func bodyOf(sub string, req api.UserRequest) any {
	if sub == "list" {
		return nil
	}
	return req
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readPassword reads the new password: the first line of stdin (typed,
// or piped from a password manager).
func readPassword(r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(os.Stderr, "password (at least 10 characters; it is shown as you type, so type it where nobody watches): ")
		}
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("the password: give it on stdin (one line): %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := web.CheckPassword(pw); err != nil {
		return "", err
	}
	return pw, nil
}

// whoAmI names the operator for the audit: the login user of this
// process.
func whoAmI() string {
	if u, err := user.Current(); err == nil {
		return "operator:" + u.Username
	}
	return "operator"
}

// stdin is where user add and passwd read the password (tests set it).
var stdin io.Reader = os.Stdin
