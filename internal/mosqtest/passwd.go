package mosqtest

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// mosquittoPasswd is the tool that writes password files; when it is not
// installed, the file is written in Go in the same format.
var mosquittoPasswd = "/usr/bin/mosquitto_passwd"

// writePasswordFile writes a mosquitto password_file for users.
func writePasswordFile(path string, users map[string]string) error {
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") {
			return fmt.Errorf("writing the password_file: username %q: empty or holds ':' or a newline", u)
		}
	}
	if _, err := os.Stat(mosquittoPasswd); err == nil {
		return runMosquittoPasswd(mosquittoPasswd, path, users)
	}
	return writePasswordFileGo(path, users)
}

// runMosquittoPasswd makes the file with `mosquitto_passwd -b`, one user at a
// time; the first call creates it (-c).
func runMosquittoPasswd(bin, path string, users map[string]string) error {
	for i, u := range sortedUsers(users) {
		args := []string{"-b", path, u, users[u]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mosquitto_passwd for user %q: %w: %s", u, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// pbkdf2Iterations and saltLen are what mosquitto_passwd 2.0 uses.
const (
	pbkdf2Iterations = 101
	saltLen          = 12
)

// writePasswordFileGo writes the file in mosquitto 2's "$7$" format:
// user:$7$ITERATIONS$base64(salt)$base64(PBKDF2-HMAC-SHA512(password, salt)).
func writePasswordFileGo(path string, users map[string]string) error {
	var buf bytes.Buffer
	for _, u := range sortedUsers(users) {
		line, err := passwordLine(u, users[u])
		if err != nil {
			return fmt.Errorf("writing the password_file: %w", err)
		}
		buf.WriteString(line)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing the password_file: %w", err)
	}
	return nil
}

func passwordLine(user, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt for user %q: %w", user, err)
	}
	return hashedLine(user, password, salt)
}

func hashedLine(user, password string, salt []byte) (string, error) {
	hash, err := pbkdf2.Key(sha512.New, password, salt, pbkdf2Iterations, sha512.Size)
	if err != nil {
		return "", fmt.Errorf("hashing the password of user %q: %w", user, err)
	}
	enc := base64.StdEncoding
	return fmt.Sprintf("%s:$7$%d$%s$%s\n", user, pbkdf2Iterations, enc.EncodeToString(salt), enc.EncodeToString(hash)), nil
}
