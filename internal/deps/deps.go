//go:build deps

// Package deps pins the modules the project has chosen before the code that
// imports them lands, so that `go mod tidy` keeps their versions in go.mod.
// The build tag keeps it out of every real build.
package deps

import (
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/mochi-mqtt/server/v2"
	_ "go.etcd.io/bbolt"
	_ "periph.io/x/conn/v3"
	_ "periph.io/x/devices/v3/mfrc522"
	_ "periph.io/x/host/v3"
)
