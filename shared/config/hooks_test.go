package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

const exampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestLoadHooks(t *testing.T) {
	cfg, err := config.LoadHooks(map[string]string{
		"RUNNER_OFFLINE_HOOK":        " https://a.example/h , http://127.0.0.1:9/x ",
		"RUNNER_OFFLINE_HOOK_SECRET": exampleSecret + " whsec_" + strings.Repeat("QUJD", 8),
		"HOOK_EVENTS":                "runner.offline,runner.unreachable",
		"HOOK_TIMEOUT_MS":            "2500",
		"ADMIN_API_KEYS":             "0123456789abcdef",
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"https://a.example/h", "http://127.0.0.1:9/x"}, cfg.HookURLs); d != "" {
		t.Errorf("urls (-want +got):\n%s", d)
	}
	if len(cfg.HookSecrets()) != 2 || cfg.HookTimeout().Milliseconds() != 2500 || cfg.Port != 3002 || cfg.HookMaxRetries != 20 {
		t.Errorf("cfg = %+v", cfg)
	}
	if !cfg.DeliversEvent("runner.offline") || cfg.DeliversEvent("runner.registered") {
		t.Error("HOOK_EVENTS filter")
	}
	def, err := config.LoadHooks(map[string]string{})
	if err != nil || !def.DeliversEvent("runner.registered") || len(def.HookURLs) != 0 {
		t.Errorf("defaults: %+v %v", def, err)
	}
}

func TestLoadHooksRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"bad values, all reported": {
			env: map[string]string{
				"RUNNER_OFFLINE_HOOK": "ftp://x", "RUNNER_OFFLINE_HOOK_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				"HOOK_TIMEOUT_MS": "5", "HOOK_MAX_RETRIES": "-1", "HOOK_CONCURRENCY": "0", "HOOK_EVENTS": "runner.exploded",
			},
			want: []string{"RUNNER_OFFLINE_HOOK:", "RUNNER_OFFLINE_HOOK_SECRET:", "HOOK_TIMEOUT_MS", "HOOK_MAX_RETRIES", "HOOK_CONCURRENCY", "HOOK_EVENTS"},
		},
		"short secret": {
			env:  map[string]string{"RUNNER_OFFLINE_HOOK_SECRET": "whsec_QUJD"},
			want: []string{"24 to 64"},
		},
		"production without secret": {
			env:  map[string]string{"NODE_ENV": "production", "RUNNER_OFFLINE_HOOK": "https://a.example/h"},
			want: []string{"refusing to send unsigned"},
		},
		"dedup retention below claim idle": {
			env:  map[string]string{"HOOK_CLAIM_IDLE_MS": "60000", "HOOK_DEDUP_RETENTION_MS": "60000"},
			want: []string{"HOOK_DEDUP_RETENTION_MS"},
		},
		"not a number": {
			env:  map[string]string{"HOOK_MAX_RETRIES": "many"},
			want: []string{"HOOK_MAX_RETRIES"}, // the parser names the variable
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.LoadHooks(tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Error("the error prints the secret")
			}
		})
	}
	if _, err := config.LoadHooks(map[string]string{"NODE_ENV": "production", "RUNNER_OFFLINE_HOOK": "https://a.example/h", "RUNNER_OFFLINE_HOOK_SECRET": exampleSecret}); err != nil {
		t.Errorf("production with a secret: %v", err)
	}
}
