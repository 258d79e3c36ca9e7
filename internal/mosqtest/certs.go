package mosqtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Certs are a CA and certificates made for one test (crypto/x509, ECDSA
// P-256), written as PEM files in a temp dir.
type Certs struct {
	Dir                           string
	CAFile, ServerCert, ServerKey string // server cert valid for 127.0.0.1 and localhost

	ca *authority

	mu      sync.Mutex
	clients int // client certificates issued, for unique file names
}

// authority is a CA that can sign certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCerts makes a CA and a server certificate it signed, in a new temp dir.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	ca, err := newAuthority("mosqtest CA")
	if err != nil {
		t.Fatalf("mosqtest: %v", err)
	}
	c := &Certs{
		Dir:        dir,
		CAFile:     filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ca:         ca,
	}
	if err := writePEM(c.CAFile, "CERTIFICATE", ca.cert.Raw); err != nil {
		t.Fatalf("mosqtest: %v", err)
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := ca.issue(server, c.ServerCert, c.ServerKey); err != nil {
		t.Fatalf("mosqtest: server certificate: %v", err)
	}
	return c
}

// Client issues a client certificate with the given common name signed by
// the CA; returns cert and key PEM file paths.
func (c *Certs) Client(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	c.mu.Lock()
	c.clients++
	n := c.clients
	c.mu.Unlock()
	certFile = filepath.Join(c.Dir, fmt.Sprintf("client%d.pem", n))
	keyFile = filepath.Join(c.Dir, fmt.Sprintf("client%d-key.pem", n))
	if err := c.ca.issue(clientTemplate(cn), certFile, keyFile); err != nil {
		t.Fatalf("mosqtest: client certificate %q: %v", cn, err)
	}
	return certFile, keyFile
}

// NewUntrustedClient issues a client certificate from a CA of its own, which
// no broker trusts, for tests of refused clients.
func NewUntrustedClient(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := newAuthority("mosqtest untrusted CA")
	if err != nil {
		t.Fatalf("mosqtest: %v", err)
	}
	certFile = filepath.Join(dir, "untrusted.pem")
	keyFile = filepath.Join(dir, "untrusted-key.pem")
	if err := ca.issue(clientTemplate(cn), certFile, keyFile); err != nil {
		t.Fatalf("mosqtest: untrusted client certificate %q: %v", cn, err)
	}
	return certFile, keyFile
}

// TLSConfig returns a client TLS config that trusts c's CA and presents the
// certificate in certFile and keyFile (none when both are "").
func (c *Certs) TLSConfig(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatalf("mosqtest: loading client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func clientTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func newAuthority(name string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signing the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate: %w", err)
	}
	return &authority{cert: cert, key: key}, nil
}

// issue signs tmpl for a new key and writes certificate and key as PEM.
func (a *authority) issue(tmpl *x509.Certificate, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating a key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return fmt.Errorf("signing the certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding the key: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", keyDER)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("making a serial number: %w", err)
	}
	return serial, nil
}

func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}
