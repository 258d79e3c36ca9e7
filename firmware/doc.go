// Package firmware owns the rules of a care centre: which tap is an arrival,
// a departure, a refusal and why, and what the child and the staff are shown.
//
// It is pure logic. It must never touch a wire, a disk, a network or the wall
// clock: callers hand it the tap, the roster, the presence state and the time.
package firmware
