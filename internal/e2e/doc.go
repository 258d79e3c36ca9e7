// Package e2e holds tests that run the whole system at once: terminals on
// the emulated reader with their stores and uplinks, a real Mosquitto,
// and the portal's bridge. It has no code of its own.
package e2e
