package packaging

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The terminal's ARM binaries, as the packages ship them, run: kiumtapd -demo
// plays its scripted session to the end under qemu's user-mode emulator,
// the armhf build on the Pi Zero and 1's ARM1176 (ARMv6: an instruction of
// ARMv7 would kill it with SIGILL), the arm64 one on the Pi 3's Cortex-A53.
func TestARMDemo(t *testing.T) {
	for _, c := range []struct {
		arch, cpu string
		qemu      []string
	}{
		{"armhf", "arm1176", []string{"qemu-arm", "qemu-arm-static"}},
		{"arm64", "cortex-a53", []string{"qemu-aarch64", "qemu-aarch64-static"}},
	} {
		t.Run(c.arch, func(t *testing.T) {
			qemu := need(t, "scripts/ensure-qemu.sh installs qemu-user", c.qemu...)
			dist, _ := dists(t)
			t.Parallel()
			data := t.TempDir()
			run(t, "dpkg-deb", "--extract", deb(t, dist, "kiumtap", c.arch), data)
			bin := filepath.Join(data, "usr", "bin")

			if v := run(t, qemu, "-cpu", c.cpu, filepath.Join(bin, "kiumctl"), "-version"); !strings.HasPrefix(v, "kiumctl "+testVersion+" (go") {
				t.Errorf("kiumctl -version: %q", v)
			}

			// The demo takes about 10 s; a minute and more under a loaded
			// machine is still a pass.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, qemu, "-cpu", c.cpu, filepath.Join(bin, "kiumtapd"), "-demo")
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("kiumtapd -demo under %s -cpu %s: %v after %v\n%s", filepath.Base(qemu), c.cpu, err, time.Since(start).Round(time.Second), out.String())
			}
			t.Logf("kiumtapd -demo on %s (%s) played in %v", c.arch, c.cpu, time.Since(start).Round(time.Second))
			// What cmd/kiumtapd's TestDemo wants of the same session.
			for _, want := range []string{
				"screen: 김*준 / 입실",
				"screen: 김*준 / 퇴실",
				"이용예정 상태 / 선생님께 알려주세요",
				"이용일 아님 / (노데이터)",
				"screen: 등록되지 않은 / 카드입니다",
				"replaced_card (card_replaced)",
				"check_in 3, check_out 1, duplicate 1, no_data 1, not_in_use 1, unknown_card 1, replaced_card 1",
				"1 chip recoveries",
				"hard reset through RST",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the demo on %s lacks %q:\n%s", c.arch, want, out.String())
				}
			}
		})
	}
}
