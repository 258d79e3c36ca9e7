package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/internal/logbuf"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/sms/smstest"
	"kiumtap/portal/web"
)

// withStdin runs fn with the password input given.
func withStdin(input string, fn func()) {
	old := stdin
	stdin = strings.NewReader(input)
	defer func() { stdin = old }()
	fn()
}

// Staff accounts: added before the bridge runs (the store directly),
// listed, changed while it runs (through its control socket, as the
// running bridge holds the store); staff log in on the page it serves.
func TestUsersAndTheStaffPage(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, dir := portal(t, mq.URL())
	withStdin("password-of-kim\n", func() {
		out, errs, code := command(t, "user", "add", "-config", cfg, "-centre", "mangwon1", "mangwon.kim")
		if code != 0 || !strings.Contains(out, "user mangwon.kim added for mangwon1") || !strings.Contains(errs, "no bridge answers") {
			t.Fatalf("user add, no bridge: %d\n%s%s", code, out, errs)
		}
	})
	withStdin("short\n", func() {
		if _, errs, code := command(t, "user", "add", "-config", cfg, "-centre", "mangwon1", "x.short"); code == 0 || !strings.Contains(errs, "shorter than 10 characters") {
			t.Errorf("a short password: %d %s", code, errs)
		}
	})
	if _, errs, code := command(t, "user", "add", "-config", cfg, "mangwon.lee"); code != 2 || !strings.Contains(errs, "name the centres") {
		t.Errorf("no centre: %d %s", code, errs)
	}

	ctx := context.Background()
	_, runLog := startRun(t, cfg, io.Discard)
	wait.For(t, 20*time.Second, "kiumbridge run to answer", func() bool {
		var st api.Status
		return api.Ask(ctx, filepath.Join(dir, "kiumbridge.sock"), "GET", "/status", nil, &st) == nil
	})
	addr := staffPageAddr(t, runLog)
	withStdin("password-of-lee\n", func() {
		out, errs, code := command(t, "user", "add", "-config", cfg, "-centre", "mangwon1", "-centre", "seogyo1", "gu.lee")
		if code != 0 || !strings.Contains(errs, "asked the running bridge") {
			t.Fatalf("user add through the bridge: %d\n%s%s", code, out, errs)
		}
	})
	withStdin("password-of-lee\n", func() {
		if _, errs, code := command(t, "user", "add", "-config", cfg, "-centre", "mangwon1", "gu.lee"); code == 0 || !strings.Contains(errs, "exists already") {
			t.Errorf("the same user again: %d %s", code, errs)
		}
	})
	out, _, code := command(t, "user", "list", "-config", cfg)
	if code != 0 || !regexp.MustCompile(`gu\.lee\s+mangwon1,seogyo1\s+active`).MatchString(out) || !strings.Contains(out, "mangwon.kim") {
		t.Errorf("user list: %d\n%s", code, out)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	res, err := browser.PostForm("http://"+addr+"/login", url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "센터 안") {
		t.Fatalf("logged in: %d\n%s", res.StatusCode, body)
	}
	// 아동·카드 on the real bridge: c03's booking is 이용예정, so its card
	// cannot be revoked (Q18), and the page says why.
	res, err = browser.Get("http://" + addr + "/c/mangwon1/cards")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(body))
	if res.StatusCode != http.StatusOK || m == nil || !strings.Contains(string(body), `<tr data-child="c03"><td>박지호</td><td class="state">사용 중</td>`) {
		t.Fatalf("아동·카드: %d\n%s", res.StatusCode, body)
	}
	res, err = browser.PostForm("http://"+addr+"/c/mangwon1/cards/revoke", url.Values{"csrf": {m[1]}, "child": {"c03"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusConflict || !strings.Contains(string(body), "박지호의 카드를 사용 중지하지 못했습니다: 이용예정 예약 있음") {
		t.Errorf("a revoke refused by Q18 on the bridge: %d\n%s", res.StatusCode, body)
	}
	// Disabled while logged in: the next page is the login.
	if out, errs, code := command(t, "user", "disable", "-config", cfg, "mangwon.kim"); code != 0 || !strings.Contains(out, "disabled, its sessions ended") {
		t.Fatalf("user disable: %d %s%s", code, out, errs)
	}
	res, err = browser.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/login" {
		t.Errorf("a disabled user's page: %s", res.Request.URL)
	}
}

// staffPageAddr is the staff page's address, as kiumbridge run logs it.
func staffPageAddr(t *testing.T, runLog *logbuf.Buffer) string {
	t.Helper()
	var addr string
	listen := regexp.MustCompile(`the staff page answers.*listen=(127\.0\.0\.1:\d+)`)
	wait.For(t, 10*time.Second, "the staff page's address in the log", func() bool {
		m := listen.FindStringSubmatch(runLog.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

// The staff page served over TLS directly (web.cert and web.key): a
// browser that trusts the certificate logs in and gets a Secure cookie;
// plain HTTP on that port is refused.
func TestStaffPageOverTLS(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, _ := portal(t, mq.URL())
	certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "web.pem"), filepath.Join(dir, "web.key")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	conf, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, fmt.Appendf(conf, "cert = %q\nkey = %q\n", certFile, keyFile), 0o600)
	withStdin("password-of-kim\n", func() {
		if out, errs, code := command(t, "user", "add", "-config", cfg, "-centre", "mangwon1", "mangwon.kim"); code != 0 {
			t.Fatalf("user add: %d\n%s%s", code, out, errs)
		}
	})
	_, runLog := startRun(t, cfg, io.Discard)
	addr := staffPageAddr(t, runLog)
	if !strings.Contains(runLog.String(), "tls=true") {
		t.Errorf("the log does not say the page is served over TLS:\n%s", runLog)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := browser.PostForm("https://"+addr+"/login", url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "센터 안") {
		t.Fatalf("logged in over TLS: %d\n%s", res.StatusCode, body)
	}
	// The cookie as the login's answer sets it.
	once := &http.Client{Transport: browser.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = once.PostForm("https://"+addr+"/login", url.Values{"user": {"mangwon.kim"}, "password": {"password-of-kim"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var session *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == web.Cookie {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Errorf("the session cookie over TLS: %+v", session)
	}
	plain, err := http.Get("http://" + addr + "/login")
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP on the TLS port: %d", plain.StatusCode)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and its key, as PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiumbridge staff page"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// The AlimTalk templates are checked against the provider at start: one
// that does not fit stops kiumbridge run with a configuration error naming
// it (exit 78); approved ones let it start.
func TestAlimTalkTemplatesAtStart(t *testing.T) {
	k := smstest.NewKakao()
	k.SolapiKey, k.SolapiSecret, k.PfID = "key", "secret", "KA01PF-kiumtap"
	k.Templates["TP-ARRIVAL"] = smstest.Template{Content: "[#{센터명}] #{아동명} 어린이가 #{시각}에 입실했습니다.", Approved: true}
	k.Templates["TP-ADDRESS"] = smstest.Template{Content: "#{아동명} 어린이가 #{주소}에서 입실했습니다.", Approved: true}
	srv := httptest.NewServer(k)
	defer srv.Close()
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, _ := portal(t, mq.URL())
	base, _ := os.ReadFile(cfg)
	write := func(template string) {
		os.WriteFile(cfg, fmt.Appendf(slices.Clone(base), "[sms]\nprovider = \"solapi\"\nfrom = \"0212345678\"\napi_key = \"key\"\napi_secret = \"secret\"\nurl = %q\n[alimtalk]\npf_id = \"KA01PF-kiumtap\"\ntemplates = { arrival = %q }\n", srv.URL, template), 0o600)
	}
	write("TP-ADDRESS")
	_, errs, code := command(t, "run", "-config", cfg)
	if code != 78 || !strings.Contains(errs, `the AlimTalk template "TP-ADDRESS" for arrival messages uses #{주소}, which kiumbridge cannot fill`) {
		t.Errorf("a template that does not fit: exit %d\n%s", code, errs)
	}
	write("TP-ARRIVAL")
	_, runLog := startRun(t, cfg, io.Discard)
	wait.For(t, 20*time.Second, "the start to say the templates fit", func() bool {
		return strings.Contains(runLog.String(), "the AlimTalk templates are approved and fit")
	})
}
