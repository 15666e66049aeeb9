package config

import (
	"strings"
	"testing"
)

// HOST unset: a service with its endpoints open listens on loopback only, one
// with keys (or in production, where the open endpoints are disabled) on
// every interface; HOST set wins either way.
func TestListenAddrFollowsAuthUnlessHostIsSet(t *testing.T) {
	const key = "0123456789abcdef-key"
	for _, tc := range []struct {
		name    string
		environ map[string]string
		api     string
		sweeper string
		hooks   string
	}{
		{name: "auth off", environ: map[string]string{},
			api: "127.0.0.1:3000", sweeper: "127.0.0.1:3001", hooks: "127.0.0.1:3002"},
		{name: "api keys only", environ: map[string]string{"API_KEYS": key},
			api: ":3000", sweeper: "127.0.0.1:3001", hooks: "127.0.0.1:3002"},
		{name: "operator keys", environ: map[string]string{"API_KEYS": key, "ADMIN_API_KEYS": key + "-op"},
			api: ":3000", sweeper: ":3001", hooks: ":3002"},
		{name: "production without operator keys", environ: map[string]string{"NODE_ENV": "production", "API_KEYS": key, "RUNNER_OFFLINE_HOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"},
			api: "", sweeper: ":3001", hooks: ":3002"},
		{name: "HOST everywhere with auth off", environ: map[string]string{"HOST": "0.0.0.0"},
			api: "0.0.0.0:3000", sweeper: "0.0.0.0:3001", hooks: "0.0.0.0:3002"},
		{name: "HOST loopback with keys", environ: map[string]string{"HOST": "127.0.0.1", "API_KEYS": key, "ADMIN_API_KEYS": key + "-op"},
			api: "127.0.0.1:3000", sweeper: "127.0.0.1:3001", hooks: "127.0.0.1:3002"},
		{name: "HOST IPv6", environ: map[string]string{"HOST": "[::1]", "PORT": "4000"},
			api: "[::1]:4000", sweeper: "[::1]:4000", hooks: "[::1]:4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.api != "" {
				a, err := LoadAPI(tc.environ)
				if err != nil {
					t.Fatal(err)
				}
				if got := a.ListenAddr(); got != tc.api {
					t.Errorf("api listens on %q, want %q", got, tc.api)
				}
			}
			s, err := LoadSweeper(tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.ListenAddr(); got != tc.sweeper {
				t.Errorf("sweeper listens on %q, want %q", got, tc.sweeper)
			}
			h, err := LoadHooks(tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.ListenAddr(); got != tc.hooks {
				t.Errorf("hooks listens on %q, want %q", got, tc.hooks)
			}
		})
	}
}

func TestDefaultHostIsDecidedByAuth(t *testing.T) {
	if DefaultAPI().Host != "" || DefaultSweeper().Host != "" || DefaultHooks().Host != "" {
		t.Fatal("the default HOST must be empty: the listen address then follows auth")
	}
}

func TestHostWithAPortIsRefused(t *testing.T) {
	for _, host := range []string{"127.0.0.1:3000", "http://example.com", "a b"} {
		_, err := LoadAPI(map[string]string{"HOST": host})
		if err == nil || !strings.Contains(err.Error(), "HOST") {
			t.Errorf("HOST=%q: error %v, want one naming HOST", host, err)
		}
	}
	for _, host := range []string{"localhost", "::", "[::1]", "10.1.2.3", "api.internal"} {
		if _, err := LoadAPI(map[string]string{"HOST": host}); err != nil {
			t.Errorf("HOST=%q refused: %v", host, err)
		}
	}
}
