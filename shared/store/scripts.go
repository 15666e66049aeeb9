package store

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var scriptFS embed.FS

func loadScript(name string) *redis.Script {
	src, err := scriptFS.ReadFile("scripts/" + name)
	if err != nil {
		// The files are embedded at build time: a missing one is a build defect.
		panic("store: missing embedded script " + name)
	}
	return redis.NewScript(string(src))
}

// The scripts, one per multi-step state change. Each file's header names its
// KEYS, ARGV and return values.
var (
	registerScript   = loadScript("register.lua")
	heartbeatScript  = loadScript("heartbeat.lua")
	offlineScript    = loadScript("offline.lua")
	dispatchScript   = loadScript("dispatch.lua")
	taskUpdateScript = loadScript("task_update.lua")
	setFieldsScript  = loadScript("set_fields.lua")

	quarantineGateScript = loadScript("quarantine_gate.lua")
	quarantineExitScript = loadScript("quarantine_exit.lua")
	taskTimeoutScript    = loadScript("task_timeout.lua")

	recordOutageScript = loadScript("record_outage.lua")
)
