package config

import (
	"fmt"
	"strconv"
)

// Dev configures the `make run` launcher, which runs every service in one
// process, so each service gets its own port variable instead of PORT.
type Dev struct {
	// APIPort (API_PORT, default 3000).
	APIPort int `env:"API_PORT"`
	// SweeperPort (SWEEPER_PORT, default 3001).
	SweeperPort int `env:"SWEEPER_PORT"`
	// HooksPort (HOOKS_PORT, default 3002).
	HooksPort int `env:"HOOKS_PORT"`
	// ReceiverPort (DEV_RECEIVER_PORT, default 3009): the dev webhook receiver
	// that logs what it gets; used when RUNNER_OFFLINE_HOOK is empty.
	ReceiverPort int `env:"DEV_RECEIVER_PORT"`
	// Embedded (DEV_EMBEDDED_REDIS, default false): use the embedded dev Redis
	// even when one answers on REDIS_URL or localhost:6379.
	Embedded bool `env:"DEV_EMBEDDED_REDIS"`
}

// DefaultDev returns the launcher's defaults.
func DefaultDev() Dev {
	return Dev{APIPort: 3000, SweeperPort: 3001, HooksPort: 3002, ReceiverPort: 3009}
}

// LoadDev reads the launcher's configuration over its defaults.
func LoadDev(environ map[string]string) (Dev, error) {
	cfg := DefaultDev()
	if err := parse(&cfg, environ); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// WithPort returns a copy of environ whose PORT is port, so that one service
// of the launcher can be loaded with its own port.
func WithPort(environ map[string]string, port int) map[string]string {
	out := make(map[string]string, len(environ)+1)
	for k, v := range environ {
		out[k] = v
	}
	out["PORT"] = strconv.Itoa(port)
	return out
}
