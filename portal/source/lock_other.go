//go:build !unix

package source

import "os"

// Without flock the lock is advisory in name only: one writer at a time is
// then the operator's to keep.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}

func tryLockFile(*os.File) (bool, error) { return true, nil }
