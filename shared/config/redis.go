package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Redis says where the control plane's state lives: one node (REDIS_URL) or
// the primary a set of Sentinels points at (REDIS_SENTINEL_ADDRS and
// REDIS_MASTER_NAME). shared/store builds the one client of a process from it.
//
// Its String and LogValue never show a password, so a Redis may be printed
// or logged; its validation errors never quote one.
type Redis struct {
	// URL (REDIS_URL, default ""): a single Redis, redis:// or rediss:// (TLS)
	// or unix://. Empty, with no Sentinels either, means DefaultRedisURL;
	// `make run` falls back to an embedded dev Redis when nothing answers there.
	URL string `env:"REDIS_URL"`
	// SentinelAddrs (REDIS_SENTINEL_ADDRS, comma-separated host:port, default
	// none): the Sentinels to ask for the current primary. Excludes REDIS_URL.
	SentinelAddrs HostPorts `env:"REDIS_SENTINEL_ADDRS"`
	// MasterName (REDIS_MASTER_NAME, default ""): the name the Sentinels
	// monitor the primary under; required with REDIS_SENTINEL_ADDRS.
	MasterName string `env:"REDIS_MASTER_NAME"`
	// Username (REDIS_USERNAME, default ""): the ACL user on the Redis nodes;
	// overrides the URL's user.
	Username string `env:"REDIS_USERNAME"`
	// Password (REDIS_PASSWORD, default ""): the Redis nodes' password;
	// overrides the URL's password.
	Password string `env:"REDIS_PASSWORD"`
	// SentinelPassword (REDIS_SENTINEL_PASSWORD, default ""): the Sentinels'
	// own password (their requirepass), when they have one.
	SentinelPassword string `env:"REDIS_SENTINEL_PASSWORD"`
	// TLS (REDIS_TLS, default false): speak TLS to the Redis nodes and the
	// Sentinels; a rediss:// URL turns it on by itself.
	TLS bool `env:"REDIS_TLS"`
	// TLSCAFile (REDIS_TLS_CA_FILE, default "" = the system roots): PEM file
	// of the certificate authorities that sign the Redis certificates.
	TLSCAFile string `env:"REDIS_TLS_CA_FILE"`
}

// HostPorts is a comma-separated list of host:port, blanks around each
// entry dropped ("a:1, b:2" is two addresses).
type HostPorts []string

// UnmarshalText splits the variable's value.
func (h *HostPorts) UnmarshalText(text []byte) error {
	*h = nil
	for _, a := range strings.Split(string(text), ",") {
		if a = strings.TrimSpace(a); a != "" {
			*h = append(*h, a)
		}
	}
	return nil
}

// DefaultRedisURL is the Redis used when neither REDIS_URL nor
// REDIS_SENTINEL_ADDRS is set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Sentinel reports whether the primary is found through Sentinels.
func (r Redis) Sentinel() bool { return len(r.SentinelAddrs) > 0 }

// NodeURL returns the single node's URL: URL, or DefaultRedisURL when it is
// empty. Meaningless in Sentinel mode.
func (r Redis) NodeURL() string {
	if r.URL == "" {
		return DefaultRedisURL
	}
	return r.URL
}

// UseTLS reports whether connections speak TLS: REDIS_TLS or a rediss:// URL.
func (r Redis) UseTLS() bool {
	return r.TLS || strings.HasPrefix(strings.ToLower(r.URL), "rediss://")
}

// CAPool loads REDIS_TLS_CA_FILE (nil, nil when it is empty: the system
// roots). Validate calls it, so a file that does not load stops the process
// at start, not at its first connection.
func (r Redis) CAPool() (*x509.CertPool, error) {
	if r.TLSCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(r.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %s holds no PEM certificate", r.TLSCAFile)
	}
	return pool, nil
}

// String describes the target without any password.
func (r Redis) String() string {
	if r.Sentinel() {
		return fmt.Sprintf("sentinel master %q via %s (tls %t)", r.MasterName, strings.Join(r.SentinelAddrs, ","), r.UseTLS())
	}
	return redactURL(r.NodeURL())
}

// LogValue logs the target without any password.
func (r Redis) LogValue() slog.Value { return slog.StringValue(r.String()) }

// redactURL returns u with its password replaced, or only its scheme when it
// does not parse (the text may hold a password anywhere).
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		scheme, _, _ := strings.Cut(u, "://")
		return scheme + "://(unparsable)"
	}
	return p.Redacted()
}

func (r Redis) validate() []error {
	var errs []error
	if r.URL != "" && r.Sentinel() {
		errs = append(errs, errors.New("REDIS_URL and REDIS_SENTINEL_ADDRS are both set: set one (a single Redis, or the Sentinels of a primary)"))
	}
	if r.URL != "" {
		errs = append(errs, validateRedisURL(r.URL)...)
		if r.TLS && strings.HasPrefix(strings.ToLower(r.URL), "unix://") {
			errs = append(errs, errors.New("REDIS_TLS: a unix:// REDIS_URL cannot use TLS"))
		}
	}
	if r.Sentinel() && r.MasterName == "" {
		errs = append(errs, errors.New("REDIS_MASTER_NAME: required with REDIS_SENTINEL_ADDRS (the name the Sentinels monitor the primary under)"))
	}
	if !r.Sentinel() && r.MasterName != "" {
		errs = append(errs, errors.New("REDIS_MASTER_NAME: set without REDIS_SENTINEL_ADDRS (which Sentinels should be asked?)"))
	}
	if !r.Sentinel() && r.SentinelPassword != "" {
		errs = append(errs, errors.New("REDIS_SENTINEL_PASSWORD: set without REDIS_SENTINEL_ADDRS"))
	}
	for _, a := range r.SentinelAddrs {
		if err := validateHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_SENTINEL_ADDRS: %q: %w", a, err))
		}
	}
	if r.TLSCAFile != "" && !r.UseTLS() {
		errs = append(errs, errors.New("REDIS_TLS_CA_FILE: set but TLS is off (set REDIS_TLS=true or use a rediss:// REDIS_URL)"))
	}
	if _, err := r.CAPool(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// validateRedisURL checks the URL's shape. No error quotes the URL: it may
// carry a password.
func validateRedisURL(u string) []error {
	p, err := url.Parse(u)
	if err != nil {
		return []error{errors.New("REDIS_URL: not a valid URL (the value is not shown: it may hold a password)")}
	}
	switch strings.ToLower(p.Scheme) {
	case "redis", "rediss":
		if p.Host == "" {
			return []error{fmt.Errorf("REDIS_URL: %s has no host", p.Redacted())}
		}
		if port := p.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return []error{fmt.Errorf("REDIS_URL: %s: port %q is not a port", p.Redacted(), port)}
			}
		}
		if db := strings.Trim(p.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return []error{fmt.Errorf("REDIS_URL: %s: database %q is not a number", p.Redacted(), db)}
			}
		}
	case "unix":
		if p.Path == "" {
			return []error{errors.New("REDIS_URL: a unix:// URL needs a socket path")}
		}
	default:
		return []error{fmt.Errorf("REDIS_URL: scheme %q is not redis://, rediss:// or unix://", p.Scheme)}
	}
	return nil
}

func validateHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a port", port)
	}
	return nil
}
