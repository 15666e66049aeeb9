package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const secretWord = "s3cr3t-Pa55"

// Every service reads the Redis variables through Common, validated the same
// way; no error ever shows a password.
func TestRedisConfiguration(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		environ map[string]string
		want    Redis
		errs    []string
	}{
		{name: "nothing set: the local default", environ: map[string]string{}, want: Redis{}},
		{name: "single node with password variable",
			environ: map[string]string{"REDIS_URL": "rediss://redis.example:6380/2", "REDIS_PASSWORD": secretWord, "REDIS_USERNAME": "ygg", "REDIS_TLS_CA_FILE": ca},
			want:    Redis{URL: "rediss://redis.example:6380/2", Password: secretWord, Username: "ygg", TLSCAFile: ca}},
		{name: "sentinel",
			environ: map[string]string{"REDIS_SENTINEL_ADDRS": "10.0.0.1:26379, s2.example:26379,[::1]:26379", "REDIS_MASTER_NAME": "ygg-primary",
				"REDIS_PASSWORD": secretWord, "REDIS_SENTINEL_PASSWORD": secretWord, "REDIS_TLS": "true"},
			want: Redis{SentinelAddrs: HostPorts{"10.0.0.1:26379", "s2.example:26379", "[::1]:26379"}, MasterName: "ygg-primary",
				Password: secretWord, SentinelPassword: secretWord, TLS: true}},
		{name: "url and sentinels",
			environ: map[string]string{"REDIS_URL": "redis://:" + secretWord + "@h:6379/0", "REDIS_SENTINEL_ADDRS": "h:26379", "REDIS_MASTER_NAME": "m"},
			errs:    []string{"REDIS_URL and REDIS_SENTINEL_ADDRS are both set"}},
		{name: "sentinels without a master name",
			environ: map[string]string{"REDIS_SENTINEL_ADDRS": "h:26379"},
			errs:    []string{"REDIS_MASTER_NAME: required with REDIS_SENTINEL_ADDRS"}},
		{name: "master name without sentinels",
			environ: map[string]string{"REDIS_MASTER_NAME": "m", "REDIS_SENTINEL_PASSWORD": secretWord},
			errs:    []string{"REDIS_MASTER_NAME: set without REDIS_SENTINEL_ADDRS", "REDIS_SENTINEL_PASSWORD: set without"}},
		{name: "bad sentinel addresses, every one reported",
			environ: map[string]string{"REDIS_SENTINEL_ADDRS": "h,h:0,:26379,h:port,h:26379", "REDIS_MASTER_NAME": "m"},
			errs:    []string{`"h": not host:port`, `"h:0": port "0"`, `":26379": no host`, `"h:port": port "port"`}},
		{name: "bad URLs never quoted",
			environ: map[string]string{"REDIS_URL": "http://u:" + secretWord + "@h:6379"},
			errs:    []string{`REDIS_URL: scheme "http"`}},
		{name: "bad URL port and database",
			environ: map[string]string{"REDIS_URL": "redis://:" + secretWord + "@h:99999/x"},
			errs:    []string{"REDIS_URL: redis://:xxxxx@h:99999/x: port"}},
		{name: "unparsable URL",
			environ: map[string]string{"REDIS_URL": "redis://:" + secretWord + "@h:63 79\x7f"},
			errs:    []string{"REDIS_URL: not a valid URL"}},
		{name: "CA file that does not load",
			environ: map[string]string{"REDIS_URL": "rediss://h:6379", "REDIS_TLS_CA_FILE": junk},
			errs:    []string{"REDIS_TLS_CA_FILE: " + junk + " holds no PEM certificate"}},
		{name: "CA file missing, and TLS off",
			environ: map[string]string{"REDIS_URL": "redis://h:6379", "REDIS_TLS_CA_FILE": filepath.Join(dir, "missing.pem")},
			errs:    []string{"REDIS_TLS_CA_FILE: set but TLS is off", "REDIS_TLS_CA_FILE: open"}},
		{name: "REDIS_TLS not a boolean", environ: map[string]string{"REDIS_TLS": "maybe"}, errs: []string{"REDIS_TLS: not a valid bool"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, apiErr := LoadAPI(tc.environ)
			sw, swErr := LoadSweeper(tc.environ)
			hk, hkErr := LoadHooks(tc.environ)
			for name, err := range map[string]error{"api": apiErr, "sweeper": swErr, "hooks": hkErr} {
				if len(tc.errs) == 0 && err != nil {
					t.Errorf("%s: %v", name, err)
				}
				for _, want := range tc.errs {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %v does not say %q", name, err, want)
					}
				}
				if err != nil && strings.Contains(err.Error(), secretWord) {
					t.Errorf("%s: the error shows the password: %v", name, err)
				}
			}
			if len(tc.errs) == 0 {
				if d := cmp.Diff(tc.want, api.Redis); d != "" {
					t.Errorf("api Redis (-want +got):\n%s", d)
				}
				if d := cmp.Diff(api.Redis, sw.Redis); d != "" {
					t.Errorf("sweeper Redis differs (-api +sweeper):\n%s", d)
				}
				if d := cmp.Diff(api.Redis, hk.Redis); d != "" {
					t.Errorf("hooks Redis differs (-api +hooks):\n%s", d)
				}
			}
			for _, shown := range []string{api.Redis.String(), fmt.Sprintf("%+v", api), api.Redis.LogValue().String()} {
				if strings.Contains(shown, secretWord) {
					t.Errorf("printing the configuration shows the password: %s", shown)
				}
			}
		})
	}
}

func TestRedisDerived(t *testing.T) {
	if got := (Redis{}).NodeURL(); got != DefaultRedisURL {
		t.Errorf("NodeURL of nothing = %q", got)
	}
	if !(Redis{URL: "rediss://h"}).UseTLS() || (Redis{URL: "redis://h"}).UseTLS() || !(Redis{TLS: true}).UseTLS() {
		t.Error("UseTLS: rediss:// or REDIS_TLS")
	}
	if got := (Redis{URL: "redis://u:" + secretWord + "@h:1/0"}).String(); got != "redis://u:xxxxx@h:1/0" {
		t.Errorf("String = %q", got)
	}
}

// writeCA writes a self-signed CA certificate and returns its path.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
