package main

import (
	"fmt"
	"io"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/source"
)

// keyNew makes a centre's centre_key: 16 random bytes in hex on stdout,
// what to do with it on stderr.
func keyNew(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumctl key new"
	fs := cli.NewFlagSet("kiumctl key new", synopsis, stderr)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected %q: %s", cli.ErrUsage, fs.Args(), synopsis)
	}
	k, err := source.NewCentreKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k)
	fmt.Fprintln(stderr, `kiumctl: a new centre key: the "centre_key" of every terminal of the centre, and the -centre-key of roster push and card key. Keep it secret; a centre keeps its key, for a new key renames every card.`)
	return nil
}

// cardKey prints the key a card has in a centre's roster
// (firmware.CardKey of its UID under the centre's key): the key of a
// roster source's staff[].key or cards[].key.
func cardKey(args []string, stdout, stderr io.Writer) error {
	const synopsis = "kiumctl card key -centre-key HEX UID"
	fs := cli.NewFlagSet("kiumctl card key", synopsis, stderr)
	keyHex := fs.String("centre-key", "", "the centre's key in hex: its terminals' centre_key (required)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: name one card UID: %s (the UID as kiumctl reader probe prints it, e.g. 04A1B2C3 or \"04 A1 B2 C3\")", cli.ErrUsage, synopsis)
	}
	if *keyHex == "" {
		return fmt.Errorf("%w: -centre-key is required: %s", cli.ErrUsage, synopsis)
	}
	key, err := source.ParseCentreKey(*keyHex)
	if err != nil {
		return fmt.Errorf("%w: -centre-key: %w", cli.ErrUsage, err)
	}
	uid, err := source.ParseUID(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%w: the UID: %w", cli.ErrUsage, err)
	}
	fmt.Fprintln(stdout, firmware.CardKey(key, uid))
	return nil
}
