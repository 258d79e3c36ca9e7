// Package metricstest scrapes a daemon's /metrics endpoint for tests, as
// Prometheus does, into name{labels} → value.
package metricstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scrape reads /metrics at addr (a host:port, or "unix:PATH" as the
// daemons' metrics key takes it), failing t on any error.
func Scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	mt, err := TryScrape(addr)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	return mt
}

// TryScrape is Scrape returning its error: for waiting until the endpoint
// answers.
func TryScrape(addr string) (map[string]float64, error) {
	tr := &http.Transport{}
	url := "http://" + addr + "/metrics"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
		url = "http://daemon/metrics"
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return Parse(resp.Body)
}

// Parse reads Prometheus's text format: each sample line's name and labels
// as written, and its value.
func Parse(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", l)
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", l, err)
		}
		out[l[:i]] = v
	}
	return out, sc.Err()
}
