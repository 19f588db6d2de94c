package main

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data, not metadata a read does not need.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
