package config

import (
	"strings"
	"testing"
)

func TestRunnerAuth(t *testing.T) {
	for _, c := range []struct {
		value   string
		keysAct bool
		errs    []string
	}{
		{"", true, nil}, // the default: token,api-key
		{"token,api-key", true, nil},
		{" api-key , TOKEN ", true, nil},
		{"token", false, nil},
		{"token,token", false, nil},
		{"api-key", true, []string{"RUNNER_AUTH: must list token"}},
		{"token,password", false, []string{`RUNNER_AUTH: "password" is not token or api-key`}},
		{"apikey,jwt", false, []string{`"apikey" is not`, `"jwt" is not`, "must list token"}},
	} {
		t.Run(c.value, func(t *testing.T) {
			cfg, err := LoadAPI(map[string]string{"RUNNER_AUTH": c.value})
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.APIKeysActForRunners(); got != c.keysAct {
					t.Fatalf("APIKeysActForRunners = %v, want %v", got, c.keysAct)
				}
				return
			}
			for _, want := range c.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not say %q", err, want)
				}
			}
		})
	}
}

// Keys shorter than MinKeyLen: a warning outside production, an error in
// production, for the api's API_KEYS and ADMIN_API_KEYS and the sweeper's
// and hooks' ADMIN_API_KEYS. Neither ever holds the key.
func TestShortKeys(t *testing.T) {
	const short, long = "my-secret-key", "a-long-key-0123456789"
	type loaded struct {
		warnings []string
		err      error
	}
	services := map[string]func(map[string]string) loaded{
		"api": func(env map[string]string) loaded {
			c, err := LoadAPI(env)
			return loaded{c.Warnings(), err}
		},
		"sweeper": func(env map[string]string) loaded {
			c, err := LoadSweeper(env)
			return loaded{c.Warnings(), err}
		},
		"hooks": func(env map[string]string) loaded {
			c, err := LoadHooks(env)
			return loaded{c.Warnings(), err}
		},
	}
	for name, load := range services {
		vars := []string{"ADMIN_API_KEYS"}
		if name == "api" {
			vars = append(vars, "API_KEYS")
		}
		for _, v := range vars {
			env := map[string]string{"API_KEYS": long, "ADMIN_API_KEYS": long}
			env[v] = long + "," + short
			t.Run(name+" "+v+" in development", func(t *testing.T) {
				got := load(env)
				if got.err != nil {
					t.Fatal(got.err)
				}
				if len(got.warnings) != 1 || !strings.HasPrefix(got.warnings[0], v+": 1 key(s) shorter than 16") {
					t.Fatalf("warnings %q", got.warnings)
				}
				if strings.Contains(got.warnings[0], short) {
					t.Fatalf("the warning shows the key: %s", got.warnings[0])
				}
			})
			t.Run(name+" "+v+" in production", func(t *testing.T) {
				prod := map[string]string{"NODE_ENV": "production", "RUNNER_OFFLINE_HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
				for k, val := range env {
					prod[k] = val
				}
				got := load(prod)
				if got.err == nil || !strings.Contains(got.err.Error(), v+": 1 key(s) shorter than 16 characters; NODE_ENV=production requires") {
					t.Fatalf("error %v", got.err)
				}
				if strings.Contains(got.err.Error(), short) {
					t.Fatalf("the error shows the key: %v", got.err)
				}
			})
		}
	}
}

func TestAPIOperatorKeys(t *testing.T) {
	const long = "a-long-key-0123456789"
	// development: the fallback stays, with a warning
	cfg, err := LoadAPI(map[string]string{"API_KEYS": long})
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "ADMIN_API_KEYS is empty") {
		t.Fatalf("warnings %q", w)
	}
	if cfg, _ := LoadAPI(map[string]string{"API_KEYS": long, "ADMIN_API_KEYS": long + "x"}); len(cfg.Warnings()) != 0 {
		t.Fatalf("warnings %q with both sets", cfg.Warnings())
	}
	// production: refused, with keys or without; blank entries are no keys
	for _, env := range []map[string]string{
		{"NODE_ENV": "production", "API_KEYS": long},
		{"NODE_ENV": "production"},
		{"NODE_ENV": "production", "API_KEYS": long, "ADMIN_API_KEYS": " , "},
	} {
		if _, err := LoadAPI(env); err == nil || !strings.Contains(err.Error(), "ADMIN_API_KEYS: NODE_ENV=production requires operator keys") {
			t.Errorf("%v: error %v", env, err)
		}
	}
	if _, err := LoadAPI(map[string]string{"NODE_ENV": "production", "ADMIN_API_KEYS": long}); err != nil {
		t.Errorf("production with operator keys: %v", err)
	}
}
