//go:build !linux

package main

// takeForeground is Linux-only (see foreground_linux.go); elsewhere Ctrl-C
// reaches make as well, which then reports the interrupt.
func takeForeground() (restore func()) { return func() {} }
