//go:build !linux

package main

import "syscall"

// childAttr: outside Linux there is no parent-death signal; the benchmark
// stops its processes itself.
func childAttr() *syscall.SysProcAttr { return nil }
