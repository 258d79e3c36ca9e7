package source

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Write writes s, validated, to path atomically and durably: a temporary
// file beside it, synced, renamed over path, then the directory synced. A
// crash at any moment leaves the old file or the new one, whole.
func Write(path string, s *Source) error {
	if err := s.Validate(); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(append(raw, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("writing %s: syncing its directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("writing %s: syncing its directory: %w", path, err)
	}
	return nil
}

// LockFile is the lock of a source directory, in the directory.
const LockFile = ".kiumbridge.lock"

// Lock takes the source directory's lock, waiting for it: Push holds it
// while it writes a source, the bridge while it reads, changes and writes
// one (a binding from a terminal), so neither overwrites the other's
// change. The returned function releases it.
func Lock(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("source: locking %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("source: locking %s: %w", dir, err)
	}
	return func() { unlockFile(f); f.Close() }, nil
}
