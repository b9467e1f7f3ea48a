package main

import "syscall"

// childAttr makes the kernel send SIGTERM to a service process the
// benchmark started should the benchmark die without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
