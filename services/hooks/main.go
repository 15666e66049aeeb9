// Command hooks is the Yggdrasil webhook worker: it relays lifecycle events
// from the Redis outbox into an asynq queue and delivers them, signed per the
// Standard Webhooks specification, to every URL in RUNNER_OFFLINE_HOOK.
// Configuration comes from the environment only (see shared/config); it exits
// 1 with a clear message on bad configuration.
package main

import (
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/svcmain"
)

func main() {
	svcmain.Main(svcmain.Service[config.Hooks]{
		Name:   "hooks",
		Load:   config.LoadHooks,
		Common: func(c config.Hooks) config.Common { return c.Common },
		Run:    app.Run,
		Port:   func(c config.Hooks) int { return c.Port },
	})
}
