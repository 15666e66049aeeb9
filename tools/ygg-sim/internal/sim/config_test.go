package sim

import (
	"strings"
	"testing"
	"time"
)

func TestValidateRefusesWhatCouldLeaveTheMachineOrRunForever(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"ipv6 loopback", func(c *Config) { c.URL = "http://[::1]:3000" }, ""},
		{"localhost", func(c *Config) { c.URL = "http://localhost:3000" }, ""},
		{"remote host", func(c *Config) { c.URL = "http://10.0.0.5:3000" }, "not a loopback address"},
		{"remote name", func(c *Config) { c.URL = "https://ygg.example.com" }, "not a loopback address"},
		{"remote allowed", func(c *Config) { c.URL = "https://ygg.example.com"; c.AllowRemote = true }, ""},
		{"not http", func(c *Config) { c.URL = "ftp://127.0.0.1" }, "not http"},
		{"too long", func(c *Config) { c.Duration = 2 * time.Hour }, "-duration"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "-duration"},
		{"too many runners", func(c *Config) { c.Runners = MaxRunners + 1 }, "-runners"},
		{"loss without operator", func(c *Config) { c.Scenario = Loss }, "-operator-key"},
		{"unknown scenario", func(c *Config) { c.Scenario = "chaos" }, "-scenario"},
		{"every problem at once", func(c *Config) { c.Runners = 0; c.Concurrency = 0 }, "-concurrency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
