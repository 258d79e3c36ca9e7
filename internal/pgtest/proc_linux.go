package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
)

// sysProcAttr runs a child as the account (nil: as the test), and makes the
// kernel send it deathSig when the test binary dies without running its
// cleanups (a panic, a -timeout), so that no postgres is left behind. The
// kernel sets the signal after the switch of user, which would clear it.
func sysProcAttr(as *account, deathSig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: deathSig}
	if as != nil {
		// No supplementary groups: not root's.
		attr.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid, Groups: []uint32{}}
	}
	return attr
}

// lockOwner creates the file name in dir, locked for as long as the file
// stays open; the lock goes with the process, however it ends. The file
// gets its name once locked, so that reapStale never finds it unlocked in
// a live cluster's directory.
func lockOwner(dir, name string) (*os.File, error) {
	f, err := os.CreateTemp(dir, name+".new-")
	if err != nil {
		return nil, fmt.Errorf("making the cluster's lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		f.Close()
		return nil, fmt.Errorf("naming the cluster's lock file: %w", err)
	}
	return f, nil
}

// tryLock locks an existing lock file; nil, nil when another process holds
// it.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// startReq asks the starter to start cmd.
type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

// starter is the goroutine that starts every child of pgtest, locked to a
// thread of its own for the life of the test binary. The kernel sends the
// parent-death signal when the thread that started a child exits, which Go
// does with a thread that a goroutine locked and left locked (go.dev/issue/
// 27505): any other thread might be taken by such a goroutine one day.
var starter = sync.OnceValue(func() chan<- startReq {
	reqs := make(chan startReq)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive the children
		for r := range reqs {
			r.done <- r.cmd.Start()
		}
	}()
	return reqs
})

// startCmd starts cmd on the starter's thread.
func startCmd(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	starter() <- startReq{cmd: cmd, done: done}
	return <-done
}
