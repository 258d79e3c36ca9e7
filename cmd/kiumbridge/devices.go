package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kiumtap/internal/cli"
	"kiumtap/portal/devices"
)

// The district's certificate authority and the terminals' identities at
// the broker (package portal/devices).

const day = 24 * time.Hour

// writeNew writes a file that must not exist yet (keys are never
// overwritten).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("%w (an existing certificate or key is never overwritten: move it aside first)", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeIssued writes name.pem and name.key in dir.
func writeIssued(dir, name string, c *devices.Issued) (certPath, keyPath string, err error) {
	key, err := devices.KeyPEM(c.Key)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := writeNew(certPath, devices.CertPEM(c.Cert), 0o644); err != nil {
		return "", "", err
	}
	if err := writeNew(keyPath, key, 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func loadAuthority(dir string) (*devices.Authority, error) {
	cert, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("the CA: %w (make one with kiumbridge ca init -out %s)", err, dir)
	}
	key, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, fmt.Errorf("the CA's key: %w", err)
	}
	ca, err := devices.LoadAuthority(cert, key)
	if err != nil {
		return nil, fmt.Errorf("the CA in %s: %w", dir, err)
	}
	return ca, nil
}

func cmdCA(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge ca init -out DIR [-name NAME] [-days 3650]\n       kiumbridge ca broker -ca DIR -host NAME[,NAME…] -out DIR [-days 825]"
	if len(args) == 0 || (args[0] != "init" && args[0] != "broker") {
		if len(args) > 0 && cli.IsHelp(args[0]) {
			fmt.Fprintln(stdout, "usage: "+synopsis)
			return nil
		}
		return fmt.Errorf("%w: %s", cli.ErrUsage, synopsis)
	}
	sub := args[0]
	fs := cli.NewFlagSet("ca "+sub, synopsis, stderr)
	out := fs.String("out", "", "directory to write the certificate and key in")
	caDir := fs.String("ca", "", "directory of the CA (ca.pem, ca.key), as kiumbridge ca init wrote it")
	name := fs.String("name", "kiumtap district CA", "the CA's name")
	hosts := fs.String("host", "", "the broker's host names and addresses, comma-separated: clients check the one they dial")
	days := fs.Int("days", 0, "validity in days (default 3650 for the CA, 825 for the broker)")
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: -out DIR is required: %s", cli.ErrUsage, synopsis)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	now := time.Now()
	if sub == "init" {
		valid := 3650
		if *days > 0 {
			valid = *days
		}
		ca, err := devices.NewAuthority(*name, now, time.Duration(valid)*day)
		if err != nil {
			return err
		}
		cert, key, err := writeIssued(*out, "ca", &devices.Issued{Cert: ca.Cert, Key: ca.Key})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CA %q, valid until %s:\n  %s  (the broker's cafile, every terminal's mqtt.ca)\n  %s  (keep it offline: it signs every terminal)\n",
			*name, ca.Cert.NotAfter.Format("2006-01-02"), cert, key)
		return nil
	}
	if *caDir == "" || *hosts == "" {
		return fmt.Errorf("%w: -ca DIR and -host are required: %s", cli.ErrUsage, synopsis)
	}
	ca, err := loadAuthority(*caDir)
	if err != nil {
		return err
	}
	valid := 825
	if *days > 0 {
		valid = *days
	}
	names := strings.Split(*hosts, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	c, err := ca.Server(names, now, time.Duration(valid)*day)
	if err != nil {
		return err
	}
	cert, key, err := writeIssued(*out, "broker", c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "broker certificate for %s, valid until %s:\n  certfile %s\n  keyfile %s\n(mosquitto.conf's certfile and keyfile; key readable by the user mosquitto)\n",
		strings.Join(names, ", "), c.Cert.NotAfter.Format("2006-01-02"), cert, key)
	return nil
}

func cmdDevice(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumbridge device issue -ca DIR -centre C -device D -out DIR [-days 1825]\n       kiumbridge device acl [-portal-user portal] CENTRE/DEVICE… | -list FILE"
	if len(args) == 0 || (args[0] != "issue" && args[0] != "acl") {
		if len(args) > 0 && cli.IsHelp(args[0]) {
			fmt.Fprintln(stdout, "usage: "+synopsis)
			return nil
		}
		return fmt.Errorf("%w: %s", cli.ErrUsage, synopsis)
	}
	sub := args[0]
	fs := cli.NewFlagSet("device "+sub, synopsis, stderr)
	caDir := fs.String("ca", "", "directory of the CA (ca.pem, ca.key)")
	centre := fs.String("centre", "", "the terminal's centre ID")
	device := fs.String("device", "", "the terminal's device ID: unique across the broker (e.g. mangwon1-door)")
	out := fs.String("out", "", "directory to write DEVICE.pem and DEVICE.key in")
	days := fs.Int("days", 1825, "validity in days")
	portal := fs.String("portal-user", "portal", "the portal bridges' username")
	list := fs.String("list", "", "a file of CENTRE/DEVICE lines (# comments), for acl")
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	if sub == "acl" {
		specs := fs.Args()
		if *list != "" {
			more, err := readDeviceList(*list)
			if err != nil {
				return err
			}
			specs = append(specs, more...)
		}
		var devs []devices.Device
		for _, s := range specs {
			c, d, ok := strings.Cut(s, "/")
			if !ok {
				return fmt.Errorf("%w: %q is not CENTRE/DEVICE", cli.ErrUsage, s)
			}
			devs = append(devs, devices.Device{Centre: c, ID: d})
		}
		acl, err := devices.ACL(*portal, devs)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, acl)
		return err
	}
	if err := noArgs(fs, synopsis); err != nil {
		return err
	}
	if *caDir == "" || *centre == "" || *device == "" || *out == "" {
		return fmt.Errorf("%w: -ca, -centre, -device and -out are required: %s", cli.ErrUsage, synopsis)
	}
	d := devices.Device{Centre: *centre, ID: *device}
	if err := d.Check(); err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	ca, err := loadAuthority(*caDir)
	if err != nil {
		return err
	}
	c, err := ca.Device(d, time.Now(), time.Duration(*days)*day)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	cert, key, err := writeIssued(*out, d.ID, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `terminal %s of centre %s: certificate valid until %s
  %s
  %s  (copy both to the terminal; the key stays secret)

In the terminal's kiumtapd config:
  "device_id": %q, "mqtt": {"centre_id": %q, "ca": "/etc/kiumtap/ca.pem",
           "cert": "/etc/kiumtap/%s.pem", "key": "/etc/kiumtap/%s.key", …}

Append to the broker's ACL (/etc/mosquitto/kiumtap/acl), then systemctl reload mosquitto:

%s`, d.ID, d.Centre, c.Cert.NotAfter.Format("2006-01-02"), cert, key, d.ID, d.Centre, d.ID, d.ID, devices.Block(d))
	return nil
}

// readDeviceList reads CENTRE/DEVICE lines; blank lines and # comments are
// skipped.
func readDeviceList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the device list: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.Contains(l, "/") {
			return nil, fmt.Errorf("%s line %d: %q is not CENTRE/DEVICE", path, n, l)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no devices")
	}
	return out, nil
}
