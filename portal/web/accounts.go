package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"kiumtap/portal/store"
)

// The registry's tables of the staff page (store.Registry: kept with
// the bridge's other records, on either store, shared by every instance).
const (
	tUsers    = "webusers"    // name → User
	tSessions = "websessions" // SHA-256 of the session token → session
	tAudit    = "webaudit"    // n → AuditRecord
	tAddrs    = "webaddrs"    // a client's address → addressFailures
)

// Login limits: after MaxFailures wrong passwords in a row an account is
// locked for LockFor; a right password then is refused too.
const (
	MaxFailures = 5
	LockFor     = 15 * time.Minute
	// SessionFor is how long a login lasts.
	SessionFor = 12 * time.Hour
	// MaxAddressFailures: after that many wrong logins from one address
	// within LockFor (any accounts, on any instance), that address's
	// logins are refused (ErrTooMany) until the window ends.
	MaxAddressFailures = 20
)

// addressFailures are an address's wrong logins in its window.
type addressFailures struct {
	N     int       `json:"n"`
	Since time.Time `json:"since"`
}

// ErrTooMany: the address has tried too many wrong logins.
var ErrTooMany = errors.New("이 주소에서 로그인을 너무 여러 번 실패했습니다. 15분 뒤에 다시 하세요")

// User is a staff account: a centre's staff (one centre) or a district
// operator (several). It sees and changes nothing of other centres.
type User struct {
	Name     string    `json:"name"`
	Centres  []string  `json:"centres"`
	Hash     string    `json:"hash"` // argon2id, PHC string
	Disabled bool      `json:"disabled,omitempty"`
	Failures int       `json:"failures,omitempty"`
	Locked   time.Time `json:"locked_until,omitzero"`
	Created  time.Time `json:"created"`
}

// Sees reports whether the user may see and change a centre.
func (u *User) Sees(centre string) bool { return slices.Contains(u.Centres, centre) }

// Errors of the accounts.
var (
	ErrLogin  = errors.New("아이디 또는 비밀번호가 맞지 않습니다")
	ErrLocked = errors.New("로그인을 여러 번 실패해 잠시 잠겼습니다. 15분 뒤에 다시 하세요")
)

// Invalid is an account change refused for what was asked (a bad name,
// a short password, a user that exists or does not): the asker's to
// mend.
type Invalid struct{ Msg string }

func (e *Invalid) Error() string { return e.Msg }

func invalid(format string, args ...any) error { return &Invalid{fmt.Sprintf(format, args...)} }

// validName: a user name is 3–64 of a-z 0-9 . _ - (it goes into logs and
// the audit).
func validName(name string) bool {
	if len(name) < 3 || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// argon2id parameters (RFC 9106's second recommendation, memory-light:
// OWASP's 19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func checkPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// CheckPassword says what is wrong with a new password, nil if nothing.
func CheckPassword(pw string) error {
	if len([]rune(pw)) < 10 {
		return errors.New("the password is shorter than 10 characters")
	}
	if len(pw) > 256 {
		return errors.New("the password is longer than 256 bytes")
	}
	return nil
}

// Accounts are the staff accounts, sessions and audit records in a store.
type Accounts struct {
	Reg store.Registry
	Now func() time.Time
}

func (a *Accounts) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func getUser(tx store.RegistryTx, name string) (*User, error) {
	raw, err := tx.Get(tUsers, []byte(name))
	if err != nil || raw == nil {
		return nil, err
	}
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("stored user %s: %w", name, err)
	}
	return &u, nil
}

func putUser(tx store.RegistryTx, u *User) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.Put(tUsers, []byte(u.Name), raw)
}

// Add makes an account for the centres given.
func (a *Accounts) Add(ctx context.Context, name, password string, centres []string, by string) error {
	if !validName(name) {
		return invalid("user name %q: want 3-64 of a-z 0-9 . _ -", name)
	}
	if len(centres) == 0 {
		return invalid("name the centres the user looks after (-centre, one or more)")
	}
	if err := CheckPassword(password); err != nil {
		return invalid("%v", err)
	}
	u := &User{Name: name, Centres: slices.Sorted(slices.Values(centres)), Hash: hashPassword(password), Created: a.now().UTC()}
	return a.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		if old, err := getUser(tx, name); err != nil || old != nil {
			return cmpErr(err, &Invalid{fmt.Sprintf("user %s exists already: kiumbridge user passwd sets its password", name)})
		}
		if err := putUser(tx, u); err != nil {
			return err
		}
		return audit(tx, a.now(), by, "", "user add", fmt.Sprintf("%s for %s", name, strings.Join(u.Centres, ", ")))
	})
}

func cmpErr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// SetPassword sets a user's password, unlocks the account and ends its
// sessions.
func (a *Accounts) SetPassword(ctx context.Context, name, password, by string) error {
	if err := CheckPassword(password); err != nil {
		return invalid("%v", err)
	}
	return a.change(ctx, name, by, "user passwd", func(u *User) { u.Hash, u.Failures, u.Locked = hashPassword(password), 0, time.Time{} })
}

// Disable disables an account and ends its sessions.
func (a *Accounts) Disable(ctx context.Context, name, by string) error {
	return a.change(ctx, name, by, "user disable", func(u *User) { u.Disabled = true })
}

func (a *Accounts) change(ctx context.Context, name, by, what string, fn func(*User)) error {
	return a.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		u, err := getUser(tx, name)
		if err != nil || u == nil {
			return cmpErr(err, &Invalid{fmt.Sprintf("no user %s (kiumbridge user list lists them)", name)})
		}
		fn(u)
		if err := putUser(tx, u); err != nil {
			return err
		}
		if err := endSessions(tx, name); err != nil {
			return err
		}
		return audit(tx, a.now(), by, "", what, name)
	})
}

// Users lists the accounts, by name.
func (a *Accounts) Users(ctx context.Context) ([]User, error) {
	var out []User
	err := a.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out = out[:0]
		return tx.Scan(tUsers, nil, func(_, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			u.Hash = ""
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// session is a login, stored under the SHA-256 of its token: the store
// never holds a token a thief could use.
type session struct {
	User    string    `json:"user"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func tokenKey(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return []byte(hex.EncodeToString(h[:]))
}

func randomToken() string { return rand.Text() + rand.Text() }

// Login checks a user's password and, right, starts a session: its
// token (the cookie) and its CSRF token. A wrong password counts towards
// the lock; a locked or disabled account is refused whatever the
// password. Every attempt is audited.
func (a *Accounts) Login(ctx context.Context, name, password, addr string) (token, csrf string, err error) {
	now := a.now().UTC()
	var u *User
	var tries addressFailures
	err = a.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		var err error
		if u, err = getUser(tx, name); err != nil {
			return err
		}
		tries, err = getAddress(tx, addr, now)
		return err
	})
	if err != nil {
		return "", "", err
	}
	if tries.N >= MaxAddressFailures {
		return "", "", ErrTooMany
	}
	ok := false
	if u != nil && !u.Disabled {
		ok = checkPassword(u.Hash, password) // outside the write: hashing is slow
	} else {
		checkPassword(hashOfNobody, password) // the same time for a name that is not
	}
	var result error
	err = a.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		result = nil
		u, err := getUser(tx, name)
		if err != nil {
			return err
		}
		switch {
		case u == nil || u.Disabled:
			result = ErrLogin
		case now.Before(u.Locked):
			result = ErrLocked
		case !ok:
			u.Failures++
			result = ErrLogin
			if u.Failures >= MaxFailures {
				u.Failures, u.Locked = 0, now.Add(LockFor)
				result = ErrLocked
			}
			if err := putUser(tx, u); err != nil {
				return err
			}
		default:
			u.Failures = 0
			if err := putUser(tx, u); err != nil {
				return err
			}
			token, csrf = randomToken(), rand.Text()
			raw, err := json.Marshal(session{User: name, CSRF: csrf, Expires: now.Add(SessionFor)})
			if err != nil {
				return err
			}
			if err := tx.Put(tSessions, tokenKey(token), raw); err != nil {
				return err
			}
		}
		if result != nil && addr != "" {
			if err := forgetAddresses(tx, now); err != nil {
				return err
			}
			tries, err := getAddress(tx, addr, now)
			if err != nil {
				return err
			}
			tries.N++
			raw, err := json.Marshal(tries)
			if err != nil {
				return err
			}
			if err := tx.Put(tAddrs, []byte(addr), raw); err != nil {
				return err
			}
		}
		what := "login"
		if result != nil {
			what = "login refused: " + result.Error()
		}
		return audit(tx, now, name, "", what, "")
	})
	if err != nil {
		return "", "", err
	}
	return token, csrf, result
}

var hashOfNobody = hashPassword(rand.Text())

// forgetAddresses deletes the counts of windows ended.
func forgetAddresses(tx store.RegistryTx, now time.Time) error {
	var old [][]byte
	err := tx.Scan(tAddrs, nil, func(k, v []byte) error {
		var f addressFailures
		if json.Unmarshal(v, &f) != nil || now.Sub(f.Since) >= LockFor {
			old = append(old, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range old {
		if err == nil {
			err = tx.Delete(tAddrs, k)
		}
	}
	return err
}

// getAddress reads an address's wrong logins in the window now is in: a
// window ended counts none.
func getAddress(tx store.RegistryTx, addr string, now time.Time) (addressFailures, error) {
	var f addressFailures
	if addr == "" {
		return f, nil
	}
	raw, err := tx.Get(tAddrs, []byte(addr))
	if err != nil || raw == nil {
		return addressFailures{Since: now}, err
	}
	if err := json.Unmarshal(raw, &f); err != nil || now.Sub(f.Since) >= LockFor {
		return addressFailures{Since: now}, nil
	}
	return f, nil
}

// Session returns the user and the CSRF token of a live session, nil if
// the token is not one (unknown, ended or expired, or its user disabled).
func (a *Accounts) Session(ctx context.Context, token string) (*User, string, error) {
	if token == "" {
		return nil, "", nil
	}
	var u *User
	var csrf string
	err := a.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		u, csrf = nil, ""
		raw, err := tx.Get(tSessions, tokenKey(token))
		if err != nil || raw == nil {
			return err
		}
		var s session
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		if !a.now().Before(s.Expires) {
			return nil
		}
		if u, err = getUser(tx, s.User); err != nil || u == nil || u.Disabled {
			u = nil
			return err
		}
		csrf = s.CSRF
		return nil
	})
	return u, csrf, err
}

// Logout ends a session.
func (a *Accounts) Logout(ctx context.Context, token string) error {
	return a.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		raw, err := tx.Get(tSessions, tokenKey(token))
		if err != nil || raw == nil {
			return err
		}
		var s session
		json.Unmarshal(raw, &s)
		if err := tx.Delete(tSessions, tokenKey(token)); err != nil {
			return err
		}
		return audit(tx, a.now(), s.User, "", "logout", "")
	})
}

// endSessions ends every session of a user (a password set, an account
// disabled); the expired ones of everyone go too.
func endSessions(tx store.RegistryTx, name string) error {
	var del [][]byte
	err := tx.Scan(tSessions, nil, func(k, v []byte) error {
		var s session
		if json.Unmarshal(v, &s) != nil || s.User == name {
			del = append(del, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range del {
		if err := tx.Delete(tSessions, k); err != nil {
			return err
		}
	}
	return nil
}

// AuditRecord is one change or login, who and when.
type AuditRecord struct {
	At     time.Time `json:"at"`
	User   string    `json:"user"`
	Centre string    `json:"centre,omitempty"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

func audit(tx store.RegistryTx, at time.Time, user, centre, action, detail string) error {
	n, err := tx.NextSequence(tAudit)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(AuditRecord{At: at.UTC(), User: user, Centre: centre, Action: action, Detail: detail})
	if err != nil {
		return err
	}
	return tx.Put(tAudit, binary.BigEndian.AppendUint64(nil, n), raw)
}

// Audit returns the audit records, oldest first.
func (a *Accounts) Audit(ctx context.Context) ([]AuditRecord, error) {
	var out []AuditRecord
	err := a.Reg.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out = out[:0]
		return tx.Scan(tAudit, nil, func(_, v []byte) error {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Record audits a change made on the page: who, at which centre, what.
// A failure to record is logged by the caller's store, not returned: the
// change itself is done.
func (a *Accounts) Record(ctx context.Context, user, centre, action, detail string) error {
	return a.Reg.UpdateRegistry(ctx, func(tx store.RegistryTx) error { return audit(tx, a.now(), user, centre, action, detail) })
}
