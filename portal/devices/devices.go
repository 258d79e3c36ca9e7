// Package devices owns how a terminal proves who it is to the broker: a
// certificate of its own, issued by the district's certificate authority
// with the device ID as its common name, and the lines of the broker's ACL
// that confine that identity to its own topics.
//
// The broker (deploy/mosquitto) takes the certificate's common name as the
// MQTT username (use_identity_as_username) and the username as the client
// ID (use_username_as_clientid): what a terminal may publish, read, and
// which session it is, follow from its certificate, never from what it
// says in a topic or a client ID. Device IDs are therefore unique across
// the broker, not only within a centre.
//
// It issues and writes; it keeps no registry: the ACL file, made from the
// blocks ACL and Block return, is the broker's list of devices.
package devices

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"kiumtap/protocol"
)

// Device is a terminal: the centre it serves and its broker-wide ID.
type Device struct {
	Centre, ID string
}

// Check reports whether the IDs can be topic levels and an MQTT identity.
func (d Device) Check() error {
	if !protocol.ValidID(d.Centre) {
		return fmt.Errorf("centre %q: 1 to 64 of A-Z a-z 0-9 _ . -", d.Centre)
	}
	if !protocol.ValidID(d.ID) {
		return fmt.Errorf("device %q: 1 to 64 of A-Z a-z 0-9 _ . -", d.ID)
	}
	return nil
}

// Block is the device's part of the broker's ACL: its username (the
// certificate's common name) may publish only its own events, status,
// replies and resync requests, and read only its own acks and commands,
// its centre's rosters and the bridges' presence.
func Block(d Device) string {
	dev := protocol.Prefix + "/c/" + d.Centre + "/d/" + d.ID
	var b strings.Builder
	fmt.Fprintf(&b, "# terminal %s of centre %s\nuser %s\n", d.ID, d.Centre, d.ID)
	for _, leaf := range []string{"events", "status", "reply", "resync"} {
		fmt.Fprintf(&b, "topic write %s/%s\n", dev, leaf)
	}
	for _, leaf := range []string{"ack", "cmd"} {
		fmt.Fprintf(&b, "topic read %s/%s\n", dev, leaf)
	}
	fmt.Fprintf(&b, "topic read %s/c/%s/roster\n", protocol.Prefix, d.Centre)
	fmt.Fprintf(&b, "topic read %s/c/%s/roster/delta\n", protocol.Prefix, d.Centre)
	fmt.Fprintf(&b, "topic read %s\n", protocol.PortalStatusFilter)
	return b.String()
}

// ACL is a whole ACL file: the portal's user, which reads and writes
// everything under the protocol's prefix, and each device's block.
func ACL(portalUser string, devs []Device) (string, error) {
	var b strings.Builder
	b.WriteString("# kiumtap broker ACL: written by kiumbridge device acl (package portal/devices).\n")
	b.WriteString("# Each terminal is the common name of its certificate (the broker's\n")
	b.WriteString("# use_identity_as_username) and may use only its own topics.\n\n")
	fmt.Fprintf(&b, "user %s\ntopic readwrite %s/#\n", portalUser, protocol.Prefix)
	seen := map[string]bool{portalUser: true}
	for _, d := range devs {
		if err := d.Check(); err != nil {
			return "", err
		}
		if seen[d.ID] {
			return "", fmt.Errorf("device ID %q twice: device IDs are unique across the broker (and none may be %q)", d.ID, portalUser)
		}
		seen[d.ID] = true
		b.WriteString("\n")
		b.WriteString(Block(d))
	}
	return b.String(), nil
}

// Authority is a certificate authority: the district's, which signs the
// broker's certificate and every terminal's.
type Authority struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewAuthority makes a CA valid for validity from now.
func NewAuthority(name string, now time.Time, validity time.Duration) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"kiumtap"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := sign(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// LoadAuthority reads a CA's certificate and key (PEM, as WritePEM
// writes them).
func LoadAuthority(certPEM, keyPEM []byte) (*Authority, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("the CA certificate is not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("the CA certificate is not a CA's (basic constraints)")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("the CA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		ek, err2 := x509.ParseECPrivateKey(kb.Bytes)
		if err2 != nil {
			return nil, fmt.Errorf("the CA key: %w", err)
		}
		k = ek
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the CA key is not an ECDSA key of the CA certificate")
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// Issued is a certificate and its new key.
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Device issues a terminal's client certificate: common name = device ID,
// organizational unit = its centre (for people reading it; the ACL is what
// confines it), client authentication only.
func (a *Authority) Device(d Device, now time.Time, validity time.Duration) (*Issued, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	return a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: d.ID, OrganizationalUnit: []string{d.Centre}, Organization: []string{"kiumtap terminal"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, now, validity)
}

// Server issues the broker's certificate for its host names and
// addresses: clients check the name they dial against these (SANs).
func (a *Authority) Server(hosts []string, now time.Time, validity time.Duration) (*Issued, error) {
	if len(hosts) == 0 {
		return nil, errors.New("a server certificate needs the broker's host names or addresses")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{"kiumtap broker"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return a.issue(tmpl, now, validity)
}

func (a *Authority) issue(tmpl *x509.Certificate, now time.Time, validity time.Duration) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(validity)
	if tmpl.NotAfter.After(a.Cert.NotAfter) {
		tmpl.NotAfter = a.Cert.NotAfter
	}
	der, err := sign(tmpl, a.Cert, &key.PublicKey, a.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key}, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %w", err)
	}
	return der, nil
}

// CertPEM is a certificate in PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM is a private key in PEM (PKCS #8), as Mosquitto, OpenSSL and Go
// read it.
func KeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
