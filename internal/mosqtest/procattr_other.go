//go:build !linux

package mosqtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
