// Package packaging owns kiumtap's Debian packages: nfpm's configurations
// (kiumtap.yaml for the terminal, kiumbridge.yaml for the portal), their
// maintainer scripts, manual pages, copyright and lintian overrides. The
// systemd units they install are in deploy/systemd, the example
// configurations in deploy/config; scripts/package.sh builds the packages
// (make package puts them in dist/).
//
// It has no Go code: its tests build the packages as make package does and
// check them the way a Pi and a portal host will meet them.
//
//   - TestContents: each package's files, owners, modes and conffiles;
//     binaries stripped, static, for the right CPU (armhf: GOARM=6) and
//     stamped with the version; every Go module linked into them listed
//     with its licence in the copyright file.
//   - TestLintian: lintian finds nothing but the waivers each package ships,
//     each with its reason, in /usr/share/lintian/overrides.
//   - TestInstall: the amd64 packages installed, upgraded, removed and
//     purged with dpkg in a throw-away Debian root (debootstrap minbase,
//     made once and kept in the user cache directory); the users, groups,
//     directories, conffiles and units checked at each step, the units
//     verified with systemd-analyze. Needs root.
//   - TestARMDemo: the armhf and arm64 kiumtapd from the packages play
//     kiumtapd -demo to its end under qemu's user-mode emulators, the armhf
//     one on an ARM1176 (the Pi Zero and 1's CPU).
//
// The tools they need (lintian, debootstrap, qemu-user) are installed by
// make test when it runs as root (scripts/ensure-packaging-tools.sh,
// scripts/ensure-qemu.sh). A test whose tool is missing skips with the
// command that installs it, except under CI (CI set), where it fails.
package packaging
