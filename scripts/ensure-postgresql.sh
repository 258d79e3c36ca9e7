#!/usr/bin/env bash
# Makes sure PostgreSQL's server programs (initdb and postgres) are on this
# machine: tests start their own private cluster with them (internal/pgtest)
# in a temp dir on a free loopback port. Installs the Debian package when
# running as root; otherwise stops with what to run. The package's own
# cluster is never used: the install is told to create none, so its service
# has nothing to start, with or without systemd.
set -euo pipefail

# have_postgresql looks where internal/pgtest looks: Debian's
# /usr/lib/postgresql/MAJOR/bin, then initdb on $PATH (or where its symlink
# points) with postgres beside it.
have_postgresql() {
  local d p
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then return 0; fi
  done
  p="$(command -v initdb 2>/dev/null || true)"
  if [ -n "$p" ]; then
    for d in "$(dirname "$p")" "$(dirname "$(readlink -f "$p")")"; do
      if [ -x "$d/postgres" ]; then return 0; fi
    done
  fi
  return 1
}

if have_postgresql; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL is missing: installing the Debian package 'postgresql' with apt-get" >&2
  # postgresql-common reads createcluster.d; with this it makes no "main"
  # cluster when the server package is installed.
  mkdir -p /etc/postgresql-common/createcluster.d
  printf '%s\n' "# From kiumtap's scripts/ensure-postgresql.sh: its tests run clusters of their own." \
    "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/kiumtap.conf
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null &&
    have_postgresql; then
    exit 0
  fi
  echo "make test: apt-get could not install the Debian package 'postgresql'; install it by hand and run make test again" >&2
  exit 1
fi
echo "make test: the tests need PostgreSQL's initdb and postgres from the Debian package 'postgresql'." >&2
echo "Install it with: sudo apt-get install postgresql   (or run make test as root, which installs it)" >&2
exit 1
