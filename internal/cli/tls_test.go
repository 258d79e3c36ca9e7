package cli

import (
	"os"
	"path/filepath"
	"testing"

	"kiumtap/internal/mosqtest"
)

func TestTLS(t *testing.T) {
	c := mosqtest.NewCerts(t)
	cert, key := c.Client(t, "T-1")
	tc, err := TLS(c.CAFile, cert, key)
	if err != nil || tc == nil || len(tc.Certificates) != 1 || tc.RootCAs == nil {
		t.Fatalf("TLS: %+v, %v", tc, err)
	}
	if tc, err := TLS("", "", ""); tc != nil || err != nil {
		t.Fatalf("no CA: %v, %v", tc, err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, args := range [][3]string{{bad, "", ""}, {"/nonexistent", "", ""}, {c.CAFile, cert, "/nonexistent"}} {
		if _, err := TLS(args[0], args[1], args[2]); err == nil {
			t.Errorf("TLS%v: no error", args)
		}
	}
}
