#!/usr/bin/env bash
# Makes sure the tools the package tests (packaging/) use are on this
# machine: lintian checks every .deb, debootstrap makes the minimal Debian
# root the packages are installed into (once, cached in the user cache
# directory). Installs the Debian packages when running as root; otherwise
# stops with what to run. nfpm itself needs nothing: it is a Go tool of the
# module (go tool nfpm).
set -euo pipefail
missing=()
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
if [ ${#missing[@]} = 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "the package tests need ${missing[*]}: installing the Debian package(s) with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "make test: apt-get could not install ${missing[*]}; install them by hand and run make test again" >&2
  exit 1
fi
echo "make test: the package tests need the Debian package(s) ${missing[*]} (lintian checks each .deb, debootstrap makes the root they are installed into)." >&2
echo "Install them with: sudo apt-get install ${missing[*]}   (or run make test as root, which installs them)" >&2
exit 1
