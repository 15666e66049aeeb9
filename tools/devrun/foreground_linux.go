package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeForeground moves devrun into a process group of its own and makes it
// the terminal's foreground, so that Ctrl-C interrupts devrun alone and not
// the make that started it (make would die of the SIGINT, status 130, even
// after devrun shut down cleanly). It does nothing unless stdin is the
// terminal and devrun's group is in its foreground. The returned function
// gives the terminal back to the original group.
func takeForeground() (restore func()) {
	fd := int(os.Stdin.Fd())
	orig, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || orig != syscall.Getpgrp() {
		return func() {}
	}
	// a background group that sets the foreground gets SIGTTOU unless it
	// ignores it
	signal.Ignore(syscall.SIGTTOU)
	if err := syscall.Setpgid(0, 0); err != nil {
		return func() {}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp()); err != nil {
		_ = syscall.Setpgid(0, orig)
		return func() {}
	}
	return func() { _ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, orig) }
}
