// Command sweeper turns expired runner leases into offline transitions (see
// package internal/sweep). It only wires configuration, logger and Redis together.
package main

import (
	"github.com/yggdrasil-cp/yggdrasil/services/sweeper/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/svcmain"
)

func main() {
	svcmain.Main(svcmain.Service[config.Sweeper]{
		Name:   "sweeper",
		Load:   config.LoadSweeper,
		Common: func(c config.Sweeper) config.Common { return c.Common },
		Run:    app.Run,
		Port:   func(c config.Sweeper) int { return c.Port },
	})
}
