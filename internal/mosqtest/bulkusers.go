package mosqtest

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BulkUsers writes a password file for many users — a fleet of thousands
// of terminals, each with its own password — in Go, and returns the
// configuration lines that make the broker check it, for Options.Extra.
// Options.Users runs mosquitto_passwd once a user, which rewrites the
// whole file each time: minutes for ten thousand.
//
// Options.Users must then be empty: mosqtest writes allow_anonymous true
// for a broker without users, and the allow_anonymous false returned here
// comes after it, which Mosquitto takes (the last value of a global
// option wins).
func BulkUsers(t testing.TB, users map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	if err := writePasswordFileGo(path, users); err != nil {
		t.Fatalf("mosqtest: %v", err)
	}
	return fmt.Sprintf("allow_anonymous false\npassword_file %s\n", path)
}
