// Package browsertest starts a real headless Chromium (Debian's
// chromium) for tests, driven by chromedp, each with a fresh profile of
// its own. make test installs the package when missing
// (scripts/ensure-chromium.sh); a test without it fails with what to do.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is the Chromium the tests run: $KIUMTAP_CHROMIUM, else chromium
// on $PATH.
func Path() (string, error) {
	if p := os.Getenv("KIUMTAP_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// New starts a headless Chromium for the test, within timeout, and
// returns a browser tab's context, ended (and the browser stopped) at the
// test's end. Bound each action with a context.WithTimeout of it.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := Path()
	if err != nil {
		t.Fatalf("browsertest: Chromium is needed: install Debian's chromium (sudo apt-get install chromium, or run make test as root, which installs it), or set KIUMTAP_CHROMIUM")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser, which lives as long as its
	// context: that one has no timeout; the start is bounded by a timer
	// that ends the test's browser instead.
	timer := time.AfterFunc(timeout, cancel)
	err = chromedp.Do(ctx)
	if !timer.Stop() {
		t.Fatalf("browsertest: Chromium (%s) did not start within %v", path, timeout)
	}
	if err != nil {
		t.Fatalf("browsertest: starting Chromium (%s): %v", path, err)
	}
	return ctx
}
