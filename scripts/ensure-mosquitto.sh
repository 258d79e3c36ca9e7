#!/usr/bin/env bash
# Makes sure the Mosquitto broker binary is on this machine: integration tests
# start their own instance of it on a free loopback port. Installs the Debian
# package when running as root; otherwise stops with what to run.
set -euo pipefail
for p in "$(command -v mosquitto 2>/dev/null || true)" /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
  if [ -n "$p" ] && [ -x "$p" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto is missing: installing the Debian package 'mosquitto' with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; then
    exit 0
  fi
  echo "make test: apt-get could not install the Debian package 'mosquitto'; install it by hand and run make test again" >&2
  exit 1
fi
echo "make test: the tests need the MQTT broker from the Debian package 'mosquitto'." >&2
echo "Install it with: sudo apt-get install mosquitto   (or run make test as root, which installs it)" >&2
exit 1
