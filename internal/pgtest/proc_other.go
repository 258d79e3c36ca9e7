//go:build !linux

package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// PostgreSQL's tests run on Linux, like the rest of kiumtap's; elsewhere
// pgtest compiles, runs PostgreSQL as the current user, and never removes
// what a dead test binary left.

func sysProcAttr(*account, syscall.Signal) *syscall.SysProcAttr { return nil }

func lockOwner(dir, name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

func tryLock(string) (*os.File, error) { return nil, errors.New("pgtest: no locks here") }

func alive(int) bool { return true }
