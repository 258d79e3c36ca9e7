// Package daemon owns the terminal's disk and network: the bbolt store, the
// durable outbox of events and the MQTT sync with the portal.
//
// It never decides a tap (that is package firmware) and never talks to the
// reader's registers (that is package hal and its children).
package daemon
