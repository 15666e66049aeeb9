// Command api is the Yggdrasil REST API: runners register, heartbeat and
// take tasks; operators list, dispatch and cancel. Configuration comes from
// the environment only (see shared/config); it exits 1 with a clear message
// on bad configuration.
package main

import (
	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/svcmain"
)

func main() {
	svcmain.Main(svcmain.Service[config.API]{
		Name:   "api",
		Load:   config.LoadAPI,
		Common: func(c config.API) config.Common { return c.Common },
		Run:    app.Run,
		Port:   func(c config.API) int { return c.Port },
	})
}
