#!/usr/bin/env bash
# Makes sure qemu's user-mode emulators for 32 and 64-bit ARM are on this
# machine: the packaging tests run the terminal's armhf (GOARM=6) and arm64
# binaries under them. Installs the Debian package 'qemu-user' when running as
# root; otherwise stops with what to run.
set -euo pipefail
have() {
  for p in "$@"; do
    if command -v "$p" >/dev/null 2>&1; then return 0; fi
  done
  return 1
}
if have qemu-arm qemu-arm-static && have qemu-aarch64 qemu-aarch64-static; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "qemu-arm or qemu-aarch64 is missing: installing the Debian package 'qemu-user' with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends qemu-user >/dev/null; then
    exit 0
  fi
  echo "make test: apt-get could not install the Debian package 'qemu-user'; install it by hand and run make test again" >&2
  exit 1
fi
echo "make test: the tests run the ARM builds of kiumtapd under qemu's user-mode emulators (qemu-arm, qemu-aarch64) from the Debian package 'qemu-user'." >&2
echo "Install it with: sudo apt-get install qemu-user   (or run make test as root, which installs it)" >&2
exit 1
