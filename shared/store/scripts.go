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
	forgetExpiriesScript = loadScript("forget_expiries.lua")
	realmQuarantineStep  = loadScript("realm_quarantine_step.lua")
	taskTimeoutScript    = loadScript("task_timeout.lua")
	runnerPurgeScript    = loadScript("runner_purge.lua")
	backfillScript       = loadScript("offline_since_backfill.lua")

	recordOutageScript = loadScript("record_outage.lua")
	restartCheckScript = loadScript("restart_check.lua")
	outageGraceScript  = loadScript("outage_grace.lua")

	realmCreateScript     = loadScript("realm_create.lua")
	realmUpdateScript     = loadScript("realm_update.lua")
	realmTransitionScript = loadScript("realm_transition.lua")
	realmDeleteScript     = loadScript("realm_delete.lua")
	realmKeyIssueScript   = loadScript("realm_key_issue.lua")
	realmKeyRevokeScript  = loadScript("realm_key_revoke.lua")
	realmKeyAuthScript    = loadScript("realm_key_auth.lua")
)
