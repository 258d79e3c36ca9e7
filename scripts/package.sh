#!/usr/bin/env bash
# Builds kiumtap's Debian packages with nfpm (go tool nfpm: a tool of the
# module, pinned in go.mod; nothing is downloaded).
#
#   scripts/package.sh PACKAGE:ARCH...
#
# PACKAGE is kiumtap (the terminal: kiumtapd and kiumctl) or kiumbridge (the
# portal's side); ARCH is a Debian architecture: armhf (built with GOARM=6:
# one package for every Pi from the Zero and 1 to the 4), arm64 or amd64.
# kiumbridge is packaged for 64-bit hosts only (the portal's: amd64, arm64).
# `make package` builds kiumtap:armhf kiumtap:arm64 kiumbridge:amd64
# kiumbridge:arm64.
#
# Environment (all optional):
#   VERSION     what the binaries' -version prints (default: git describe)
#   DEB_VERSION the packages' version (default: made from VERSION: a tag
#               v1.2.3 gives 1.2.3, v1.2.3-4-gabc 1.2.3+4.gabc, an untagged
#               commit 0.0~gitN.HASH with N the commit count, so a later
#               commit always upgrades an earlier one); the revision is -1
#   DIST        where the .deb files go (default: dist)
#   BUILD_DIR   where the binaries are built (default: bin/package)
#   CONFIG_DIR  the example configurations installed as conffiles
#               (default: deploy/config)
#   GO          the go command (default: go)
# Binaries are built as the packages need them: CGO_ENABLED=0, -trimpath,
# -ldflags "-s -w -X kiumtap/internal/cli.Version=$VERSION".
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DIST=${DIST:-dist}
BUILD_DIR=${BUILD_DIR:-bin/package}
CONFIG_DIR=${CONFIG_DIR:-deploy/config}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
MAINTAINER="kiumtap maintainers <maintainers@users.noreply.h-seed-702b756a.example>"

die() {
  echo "package: $*" >&2
  exit 1
}

# debversion turns git describe's output into a Debian upstream version.
debversion() {
  local v=${1#v}
  # A tag is digits and dots (1.2.3); anything else (a commit's hash, which
  # may start with a digit too, or "dev") sorts before every tag.
  if ! [[ $v =~ ^[0-9]+(\.[0-9]+)+ ]]; then
    local n
    n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
    v="0.0~git$n.$v"
  fi
  # The upstream version may not hold "-" (the revision follows it) nor
  # anything but alphanumerics and . + ~.
  v=${v//-/+}
  v=${v/+g/.g}
  printf '%s' "${v//[^A-Za-z0-9.+~]/.}"
}
DEB_VERSION=${DEB_VERSION:-$(debversion "$VERSION")}
case $DEB_VERSION in
[0-9]*) ;;
*) die "DEB_VERSION $DEB_VERSION must start with a digit (Debian policy 5.6.12)" ;;
esac

# Reproducible: every file's time is the commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

[ $# -gt 0 ] || die "name what to build: scripts/package.sh kiumtap:armhf kiumbridge:amd64 ... (see the script's header)"
for f in kiumtapd.toml kiumbridge.toml; do
  [ -f "$CONFIG_DIR/$f" ] || die "$CONFIG_DIR/$f is missing: the packages install it as a conffile in /etc; write it, or set CONFIG_DIR to a directory that has it"
done
mkdir -p "$DIST"

for target in "$@"; do
  pkg=${target%%:*}
  arch=${target#*:}
  case $pkg in
  kiumtap) cmds=(./cmd/kiumtapd ./cmd/kiumctl) ;;
  kiumbridge) cmds=(./cmd/kiumbridge) ;;
  *) die "unknown package $pkg in $target: kiumtap or kiumbridge" ;;
  esac
  goarm=
  case $arch in
  amd64 | arm64) goarch=$arch ;;
  armhf)
    goarch=arm
    goarm=6
    ;;
  *) die "unknown architecture $arch in $target: armhf, arm64 or amd64" ;;
  esac
  if [ "$pkg" = kiumbridge ] && [ "$arch" = armhf ]; then
    die "kiumbridge is packaged for 64-bit portal hosts only: build kiumbridge:arm64 or kiumbridge:amd64"
  fi

  out="$BUILD_DIR/$pkg-$arch"
  rm -rf "$out"
  mkdir -p "$out"
  echo "package: $pkg $DEB_VERSION-1 $arch: building ${cmds[*]}" >&2
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
    "$GO" build -trimpath -ldflags "-s -w -X kiumtap/internal/cli.Version=$VERSION" -o "$out/" "${cmds[@]}" ||
    die "go build of ${cmds[*]} for $arch failed (output above)"

  # The Debian changelog: one entry, this build.
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  {
    printf '%s (%s-1) stable; urgency=medium\n\n' "$pkg" "$DEB_VERSION"
    printf '  * Built from kiumtap %s, commit %s.\n\n' "$VERSION" "${commit:0:12}"
    printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n >"$out/changelog.Debian.gz"
  # The manual pages of the package's commands.
  for c in "${cmds[@]}"; do
    gzip -9n <"packaging/man/${c##*/}.1" >"$out/${c##*/}.1.gz"
  done

  DEB_ARCH=$arch DEB_VERSION=$DEB_VERSION BUILD_DIR=$out CONFIG_DIR=$CONFIG_DIR \
    "$GO" tool nfpm package --config "packaging/$pkg.yaml" --packager deb --target "$DIST/" >&2 ||
    die "nfpm could not package $pkg for $arch (output above)"
done
