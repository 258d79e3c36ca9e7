# kiumtap — the two set-up commands are `make run` and `make test`.
GO        ?= go
BIN       := bin
CMDS      := ./cmd/...
GOFILES    = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    = -X kiumtap/internal/cli.Version=$(VERSION)

.PHONY: all build test run bench cross package lint mosquitto postgresql chromium packaging-tools qemu clean

all: build

## build: compile every binary into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(CMDS)

## run: the whole product on embedded defaults: broker, bridge with console texts, terminal on the emulator, a scripted day
run:
	$(GO) run ./cmd/kiumdemo -web 127.0.0.1:8466

## test: lint, make sure Mosquitto, PostgreSQL, Chromium, lintian, debootstrap
## and qemu are here, then every test with the race detector
test: lint mosquitto postgresql chromium packaging-tools qemu
	$(GO) test -race -timeout 18m ./...

## bench: the benchmarks the issues name (see README for the metrics)
bench:
	$(GO) test -run '^$$' -bench 'ReadUID' -benchtime 200x ./hal/rc522/
	$(GO) test -run '^$$' -bench 'Idle' -benchtime 300x ./hal/rc522/
	$(GO) test -run '^$$' -bench 'TapAppend' -benchtime 1000x ./daemon/store/
	$(GO) test -run '^$$' -bench 'Tap' -benchtime 200x ./daemon/terminal/
	$(GO) test -run '^$$' -bench 'OutboxDrain' -benchtime 3x ./daemon/uplink/
	$(GO) test -run '^$$' -bench 'RosterApply' -benchtime 50x ./daemon/uplink/
	$(GO) test -run '^$$' -bench 'BridgeIngest' -benchtime 3x ./portal/bridge/
	$(GO) test -run '^$$' -bench 'TapToText' -benchtime 200x ./portal/bridge/
	$(GO) test -run '^$$' -bench 'TapToBoard' -benchtime 100x ./portal/bridge/
	$(GO) test -run '^$$' -bench 'Fleet' -benchtime 1x -timeout 30m ./portal/bridge/
	$(GO) test -run '^$$' -bench 'Put' -benchtime 3s ./portal/store/pgstore/
	$(GO) test -run '^$$' -bench 'BrokerReturn' -benchtime 1x ./internal/e2e/
	$(GO) test -run '^$$' -bench 'Start' -benchtime 20x ./cmd/kiumtapd/
	$(GO) test -run '^$$' -bench 'Footprint' -benchtime 1x ./cmd/kiumtapd/

## cross: the terminal's binaries for the Pi boards we support (kiumbridge,
## the portal's side, is built for 64-bit hosts only)
TERMINAL_CMDS = ./cmd/kiumtapd ./cmd/kiumctl ./cmd/kiumdemo
cross:
	@mkdir -p $(BIN)/linux-armv6 $(BIN)/linux-armv7 $(BIN)/linux-arm64
	GOOS=linux GOARCH=arm GOARM=6 CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv6/ $(TERMINAL_CMDS)
	GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7/ $(TERMINAL_CMDS)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ $(CMDS)

## package: the Debian packages in dist/: kiumtap (kiumtapd, kiumctl) for
## armhf (GOARM=6: every Pi from the Zero and 1 to the 4) and arm64, kiumbridge
## for amd64 and arm64. nfpm is a tool of the module (go tool nfpm); the
## binaries are stripped and static. PACKAGES=kiumtap:amd64 builds others.
DIST     ?= dist
PACKAGES ?= kiumtap:armhf kiumtap:arm64 kiumbridge:amd64 kiumbridge:arm64
package:
	VERSION='$(VERSION)' DIST='$(DIST)' scripts/package.sh $(PACKAGES)

## lint: gofmt must have nothing to say, go vet must pass
lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

mosquitto:
	@scripts/ensure-mosquitto.sh

# The server programs the tests run their own clusters with (internal/pgtest).
postgresql:
	@scripts/ensure-postgresql.sh

# The browser the staff page's tests drive headless (internal/browsertest).
chromium:
	@scripts/ensure-chromium.sh

# The package tests' tools: lintian and debootstrap (packaging/), qemu's
# user-mode emulators for the ARM builds.
packaging-tools:
	@scripts/ensure-packaging-tools.sh

qemu:
	@scripts/ensure-qemu.sh

clean:
	rm -rf $(BIN) $(DIST)
