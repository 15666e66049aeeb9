package config

import (
	"strings"
	"testing"
)

func TestLoadAPIReportsEveryProblemByVariable(t *testing.T) {
	_, err := LoadAPI(map[string]string{
		"PORT":                  "http",
		"LEASE_TTL_MS":          "soon",
		"LOG_LEVEL":             "loud",
		"HEARTBEAT_INTERVAL_MS": "90000",
	})
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"PORT", "LEASE_TTL_MS", "LOG_LEVEL", "HEARTBEAT_INTERVAL_MS"} {
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
