// Package config is the only place that reads the environment. Each service
// has a struct here: defaults in one place (its Default function), then Load
// from the environment, then Validate reporting every problem at once.
//
// It must never connect to anything or log: it turns variables into values.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

// Common is configuration every service reads.
type Common struct {
	// Redis (REDIS_URL, REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME and the
	// other REDIS_ variables; see Redis): where the state lives.
	Redis Redis
	// NodeEnv (NODE_ENV, default "development"): "production" makes missing
	// keys fatal instead of a warning.
	NodeEnv string `env:"NODE_ENV"`
	// LogLevel (LOG_LEVEL, default info): error, warn, info or debug.
	LogLevel logging.Level `env:"LOG_LEVEL"`
	// LogFormat (LOG_FORMAT, default simple, as the original controller):
	// simple (text) or json.
	LogFormat string `env:"LOG_FORMAT"`
	// LogTransports (LOG_TRANSPORTS, comma-separated, default console):
	// where log lines go, console (stderr) and/or file:<path> (appended,
	// mode 0600, created when missing); several fan out.
	LogTransports []string `env:"LOG_TRANSPORTS" envSeparator:","`
	// MetricsPrefix (METRICS_PREFIX, default "yggdrasil_"): prefix of every metric name.
	MetricsPrefix string `env:"METRICS_PREFIX"`
	// MetricsToken (METRICS_TOKEN, default none = /metrics open): the
	// bearer token /metrics requires (it lists every runner's id, name and
	// version). At least 16 characters; compared in constant time.
	MetricsToken string `env:"METRICS_TOKEN"`
	// Host (HOST, default "" = decided by auth): the address the service
	// listens on. Unset, a service whose endpoints are open (auth off: no
	// keys, outside production) listens on LoopbackHost only, so that nobody
	// on the network can dispatch shell commands to the fleet; one with keys
	// listens on every interface, as a server behind a load balancer or in a
	// container must. 0.0.0.0 (or ::) listens everywhere whatever the keys.
	// An IP or a host name, without a port (PORT sets that).
	Host string `env:"HOST"`
}

// LoopbackHost is where a service without auth listens unless HOST says otherwise.
const LoopbackHost = "127.0.0.1"

// listenAddr is host:port for net.Listen: HOST when set, else LoopbackHost
// when the service's endpoints are open, else every interface.
func (c Common) listenAddr(port int, open bool) string {
	host := c.Host
	if host == "" && open {
		host = LoopbackHost
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}

func defaultCommon() Common {
	return Common{Redis: Redis{}, NodeEnv: "development", LogLevel: logging.LevelInfo, LogFormat: logging.FormatSimple,
		LogTransports: []string{logging.TransportConsole}, MetricsPrefix: "yggdrasil_"}
}

// Production reports whether NODE_ENV is production.
func (c Common) Production() bool { return strings.EqualFold(c.NodeEnv, "production") }

// Logger returns the logger configuration.
func (c Common) Logger() logging.Config {
	return logging.Config{Level: c.LogLevel, Format: c.LogFormat, Transports: c.LogTransports}
}

// validateLogger checks LOG_LEVEL, LOG_FORMAT and LOG_TRANSPORTS.
func validateLogger(l logging.Config) []error {
	var errs []error
	if _, err := logging.ParseLevel(l.Level); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	switch strings.ToLower(l.Format) {
	case "json", "simple", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT: %q is not json or simple", l.Format))
	}
	if err := logging.CheckTransports(l.Transports); err != nil {
		errs = append(errs, fmt.Errorf("LOG_TRANSPORTS: %w", err))
	}
	return errs
}

func (c Common) validate() []error {
	errs := append(validateLogger(c.Logger()), c.Redis.validate()...)
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, errors.New("METRICS_TOKEN: must be at least 16 characters"))
	}
	if h := strings.Trim(c.Host, "[]"); strings.ContainsAny(h, ":/ ") && net.ParseIP(h) == nil {
		errs = append(errs, fmt.Errorf("HOST: %q is not an IP address or host name (without a port: PORT sets that)", c.Host))
	}
	return errs
}

// Environ returns the process environment as a map, for Load functions.
func Environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// parse fills cfg (already holding defaults) from environ. Variables that are
// set but empty keep the default. Every parse error is returned, joined.
func parse(cfg any, environ map[string]string) error {
	clean := make(map[string]string, len(environ))
	for k, v := range environ {
		if strings.TrimSpace(v) != "" {
			clean[k] = strings.TrimSpace(v)
		}
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: clean}); err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) {
			errs := make([]error, len(agg.Errors))
			for i, e := range agg.Errors {
				errs[i] = nameVariable(cfg, e)
			}
			return errors.Join(errs...)
		}
		return nameVariable(cfg, err)
	}
	return nil
}

// nameVariable rewrites a parse error about a Go field into one about the
// environment variable the operator actually set.
func nameVariable(cfg any, err error) error {
	var pe env.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	if name := envTag(reflect.TypeOf(cfg), pe.Name); name != "" {
		return fmt.Errorf("%s: not a valid %s: %w", name, pe.Type, pe.Err)
	}
	return err
}

func envTag(t reflect.Type, field string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == field {
			if tag, _, _ := strings.Cut(f.Tag.Get("env"), ","); tag != "" {
				return tag
			}
		}
		if f.Anonymous || f.Type.Kind() == reflect.Struct {
			if tag := envTag(f.Type, field); tag != "" {
				return tag
			}
		}
	}
	return ""
}
