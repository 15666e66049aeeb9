// Command yggctl is the operator CLI of Yggdrasil: runners, tasks, updates,
// admission, the sweeper's quarantine and the hooks archive, over the Go
// client. Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/tools/yggctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], config.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
