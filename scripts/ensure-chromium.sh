#!/usr/bin/env bash
# Makes sure Debian's Chromium is on this machine, with a Korean font:
# the staff page's tests drive it headless (internal/browsertest) and take
# the README's screenshots with it. Installs the packages when running as
# root; otherwise stops with what to run.
set -euo pipefail

have() { command -v chromium >/dev/null 2>&1 && fc-list :lang=ko 2>/dev/null | grep -q .; }

if have; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium or a Korean font is missing: installing the Debian packages 'chromium' and 'fonts-noto-cjk' with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null && have; then
    exit 0
  fi
  echo "make test: apt-get could not install the Debian packages 'chromium' and 'fonts-noto-cjk'; install them by hand and run make test again" >&2
  exit 1
fi
echo "make test: the browser tests need Debian's chromium and a Korean font (fonts-noto-cjk)." >&2
echo "Install them with: sudo apt-get install chromium fonts-noto-cjk   (or run make test as root, which installs them)" >&2
exit 1
