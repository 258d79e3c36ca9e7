package mosqtest

import "syscall"

// sysProcAttr makes the kernel stop mosquitto when the test binary dies
// without running its cleanups (a panic, a -timeout), so no broker is left
// behind holding a port.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
