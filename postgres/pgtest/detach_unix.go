//go:build unix

package pgtest

import "syscall"

// detached puts the watchdog in a process group of its own, out of reach of
// the terminal's interrupt sent to the test's group.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
