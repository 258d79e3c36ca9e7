package source

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// CentreKeySize is the size of the centre keys NewCentreKey makes, and
// the least a centre key may have: the key of the HMAC that names cards
// (firmware.CardKey), the terminals' centre_key.
const CentreKeySize = 16

// NewCentreKey makes a centre key: CentreKeySize random bytes, in hex.
func NewCentreKey() (string, error) {
	k := make([]byte, CentreKeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("making a centre key: %w", err)
	}
	return hex.EncodeToString(k), nil
}

// ParseCentreKey reads a centre key in hex (the terminals' centre_key):
// at least CentreKeySize bytes.
func ParseCentreKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	switch {
	case strings.TrimSpace(s) == "":
		return nil, errors.New("the centre's card key is missing: give the centre_key of the centre's terminals (-centre-key)")
	case err != nil:
		return nil, errors.New("the centre's card key: not hex: give the centre_key of the centre's terminals")
	case len(k) < CentreKeySize:
		return nil, fmt.Errorf("the centre's card key: %d bytes, want at least %d (%d hex digits): give the centre_key of the centre's terminals", len(k), CentreKeySize, 2*CentreKeySize)
	}
	return k, nil
}

// ParseUID reads a card's UID in hex, 4 to 10 bytes, as a reader or a
// staff list gives it: ':', '-' and spaces between the digits are
// allowed ("04:A1:B2:C3"). Its errors do not repeat the UID.
func ParseUID(s string) ([]byte, error) {
	digits := strings.NewReplacer(":", "", "-", "", " ", "").Replace(s)
	b, err := hex.DecodeString(digits)
	switch {
	case err != nil:
		return nil, errors.New("not a UID in hex digits (0-9, A-F, in pairs): read the card again")
	case len(b) < 4 || len(b) > 10:
		return nil, fmt.Errorf("%d bytes: a card UID has 4 to 10 bytes (8 to 20 hex digits)", len(b))
	}
	return b, nil
}
