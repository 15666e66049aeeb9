package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadAPIReportsEveryProblemByVariable(t *testing.T) {
	_, err := LoadAPI(map[string]string{
		"PORT":                  "http",
		"LEASE_TTL_MS":          "soon",
		"LOG_LEVEL":             "loud",
		"HEARTBEAT_INTERVAL_MS": "90000",
		"HOOKS_URL":             "hooks:3002",
	})
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"PORT", "LEASE_TTL_MS", "LOG_LEVEL", "HEARTBEAT_INTERVAL_MS", "HOOKS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	_, err = LoadAPI(map[string]string{"LOG_LEVEL": "loud", "HEARTBEAT_INTERVAL_MS": "90000", "NODE_ENV": "production"})
	for _, want := range []string{"LOG_LEVEL", "HEARTBEAT_INTERVAL_MS", "API_KEYS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestLoadAPIDefaults(t *testing.T) {
	cfg, err := LoadAPI(map[string]string{"PORT": " ", "API_KEYS": "0123456789abcdef,fedcba9876543210"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 3000 || cfg.LeaseTTLMs != 60000 || cfg.HeartbeatIntervalMs != 15000 || cfg.MetricsPrefix != "yggdrasil_" || len(cfg.APIKeys) != 2 {
		t.Fatalf("defaults = %+v", cfg)
	}
}

// The API and the sweeper read the shared settings through config.Fleet: the
// same variables, defaults and minimums.
func TestFleetIsValidatedTheSameInAPIAndSweeper(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ map[string]string
		errs    []string
	}{
		{name: "test-sized leases", environ: map[string]string{"LEASE_TTL_MS": "300", "HEARTBEAT_INTERVAL_MS": "100"}},
		{name: "minimums", environ: map[string]string{"LEASE_TTL_MS": "100", "HEARTBEAT_INTERVAL_MS": "10", "TASK_RETENTION_MS": "1"}},
		{name: "below the minimums", environ: map[string]string{"LEASE_TTL_MS": "99", "HEARTBEAT_INTERVAL_MS": "9", "TASK_RETENTION_MS": "0"},
			errs: []string{"LEASE_TTL_MS: 99 is below 100", "HEARTBEAT_INTERVAL_MS: 9 is below 10", "TASK_RETENTION_MS: 0 is below 1"}},
		{name: "interval not below the TTL", environ: map[string]string{"LEASE_TTL_MS": "1000", "HEARTBEAT_INTERVAL_MS": "1000"},
			errs: []string{"HEARTBEAT_INTERVAL_MS (1000) must be below LEASE_TTL_MS (1000)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, apiErr := LoadAPI(tc.environ)
			sw, swErr := LoadSweeper(tc.environ)
			for name, err := range map[string]error{"api": apiErr, "sweeper": swErr} {
				if len(tc.errs) == 0 && err != nil {
					t.Errorf("%s: %v", name, err)
				}
				for _, want := range tc.errs {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %v does not say %q", name, err, want)
					}
				}
			}
			if d := cmp.Diff(api.Fleet, sw.Fleet); d != "" {
				t.Errorf("api and sweeper read different fleet settings (-api +sweeper):\n%s", d)
			}
		})
	}
}

func TestDefaultsAreValid(t *testing.T) {
	for name, err := range map[string]error{
		"api": DefaultAPI().Validate(), "sweeper": DefaultSweeper().Validate(), "hooks": DefaultHooks().Validate(),
	} {
		if err != nil {
			t.Errorf("%s defaults: %v", name, err)
		}
	}
	sw, err := LoadSweeper(map[string]string{"TASK_RETENTION_MS": "60000"})
	if err != nil || sw.TaskRetention() != time.Minute {
		t.Errorf("sweeper TASK_RETENTION_MS=60000: retention %s, err %v", sw.TaskRetention(), err)
	}
}

func TestLogDefaultsAndTransports(t *testing.T) {
	for name, c := range map[string]Common{"api": DefaultAPI().Common, "sweeper": DefaultSweeper().Common, "hooks": DefaultHooks().Common} {
		if c.LogFormat != "simple" || len(c.LogTransports) != 1 || c.LogTransports[0] != "console" {
			t.Errorf("%s: LOG_FORMAT %q, LOG_TRANSPORTS %q; want simple, [console] (as the original)", name, c.LogFormat, c.LogTransports)
		}
	}
	if f := DefaultRunner("1.0.0").LogFormat; f != "simple" {
		t.Errorf("runner LOG_FORMAT default %q, want simple", f)
	}
	cfg, err := LoadAPI(map[string]string{"LOG_TRANSPORTS": "console, file:/tmp/ygg-api.log", "LOG_FORMAT": "json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Logger().Transports; len(got) != 2 || cfg.Logger().Format != "json" {
		t.Errorf("Logger() = %+v", cfg.Logger())
	}
	_, err = LoadSweeper(map[string]string{"LOG_TRANSPORTS": "syslog,file:", "LOG_FORMAT": "xml"})
	for _, want := range []string{"LOG_TRANSPORTS", `"syslog"`, `"file:"`, "LOG_FORMAT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadSweeper error %v lacks %q", err, want)
		}
	}
}

func TestFailoverGraceDefaultsToOneLeaseTTL(t *testing.T) {
	sw, err := LoadSweeper(map[string]string{"LEASE_TTL_MS": "3000", "HEARTBEAT_INTERVAL_MS": "1000"})
	if err != nil || sw.FailoverGrace() != 3*time.Second {
		t.Errorf("default grace %s (err %v), want one LEASE_TTL_MS (3 s)", sw.FailoverGrace(), err)
	}
	sw, err = LoadSweeper(map[string]string{"FAILOVER_GRACE_MS": "7000"})
	if err != nil || sw.FailoverGrace() != 7*time.Second {
		t.Errorf("FAILOVER_GRACE_MS=7000: grace %s, err %v", sw.FailoverGrace(), err)
	}
	for _, bad := range []string{"-1", "3600001"} {
		if _, err := LoadSweeper(map[string]string{"FAILOVER_GRACE_MS": bad}); err == nil || !strings.Contains(err.Error(), "FAILOVER_GRACE_MS") {
			t.Errorf("FAILOVER_GRACE_MS=%s: err %v, want it refused", bad, err)
		}
	}
}
