package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeSecrets are the variables that must be set and must never have a
// default: compose refuses to start without them.
var composeSecrets = []string{"API_KEYS", "ADMIN_API_KEYS", "RUNNER_OFFLINE_HOOK_SECRET"}

// composeEnv is what an operator's .env would hold.
func composeEnv() map[string]string {
	return map[string]string{
		"API_KEYS":                   "compose-runner-key-0123456789",
		"ADMIN_API_KEYS":             "compose-operator-key-0123456789",
		"RUNNER_OFFLINE_HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"YGGDRASIL_API_KEY":          "compose-runner-key-0123456789",
	}
}

func loadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	var cfs []types.ConfigFile
	for _, f := range files {
		cfs = append(cfs, types.ConfigFile{Filename: filepath.Join(repoRoot(t), f)})
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  repoRoot(t),
		ConfigFiles: cfs,
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("yggdrasil", true)
		o.Profiles = []string{"*"}
	})
}

func TestComposeInvariants(t *testing.T) {
	p, err := loadCompose(t, composeEnv(), "docker-compose.yml", "deploy/compose/runner.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"redis", "api", "sweeper", "hooks", "ratatoskr", "otel-collector", "jaeger", "prometheus"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}

	redis := p.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	for _, flag := range []string{"--notify-keyspace-events Ex", "--appendonly yes", "--maxmemory-policy noeviction", "--hash-max-listpack-value 512"} {
		if !strings.Contains(cmd, flag) {
			t.Errorf("redis command %q lacks %q", cmd, flag)
		}
	}
	if redis.HealthCheck == nil || !slices.Contains(redis.HealthCheck.Test, "ping") {
		t.Errorf("redis health check = %+v, want redis-cli ping", redis.HealthCheck)
	}

	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			target, ok := p.Services[dep]
			if !ok || target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%s on %q, want 127.0.0.1", name, port.Published, port.Protocol, port.HostIP)
			}
		}
		if v := s.Environment["LOG_FORMAT"]; name != "redis" && !strings.HasPrefix(name, "otel") && name != "jaeger" && name != "prometheus" {
			if v == nil || *v != "json" {
				t.Errorf("%s: LOG_FORMAT is not json", name)
			}
		}
	}

	for _, name := range []string{"api", "sweeper", "hooks", "ratatoskr"} {
		s := p.Services[name]
		want := []string{"CMD", "/usr/local/bin/" + name, "healthcheck"}
		if s.HealthCheck == nil || !slices.Equal([]string(s.HealthCheck.Test), want) {
			t.Errorf("%s health check = %+v, want %v", name, s.HealthCheck, want)
		}
		if s.Build == nil || s.Build.Target != name || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s build = %+v, want the Dockerfile's target %s", name, s.Build, name)
		}
	}
	for _, name := range []string{"api", "sweeper", "hooks"} {
		if d, ok := p.Services[name].DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for a healthy redis: %+v", name, p.Services[name].DependsOn)
		}
		if v := p.Services[name].Environment["REDIS_URL"]; v == nil || *v != "redis://redis:6379/0" {
			t.Errorf("%s: REDIS_URL is not redis://redis:6379/0", name)
		}
	}
	if v := p.Services["api"].Environment["API_KEYS"]; v == nil || *v != composeEnv()["API_KEYS"] {
		t.Error("api: API_KEYS is not the value from the environment")
	}
	for _, name := range []string{"otel-collector", "jaeger", "prometheus"} {
		if !slices.Contains(p.Services[name].Profiles, "observability") {
			t.Errorf("%s is not in the observability profile", name)
		}
	}
}

func TestComposeDefaultProfileStartsOnlyTheController(t *testing.T) {
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  repoRoot(t),
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(repoRoot(t), "docker-compose.yml")}},
		Environment: composeEnv(),
	}, func(o *loader.Options) { o.SetProjectName("yggdrasil", true) })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range p.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	if want := []string{"api", "hooks", "redis", "sweeper"}; !slices.Equal(got, want) {
		t.Errorf("services without a profile = %v, want %v", got, want)
	}
}

func TestComposeRefusesMissingSecrets(t *testing.T) {
	for _, secret := range append(composeSecrets, "YGGDRASIL_API_KEY") {
		for _, value := range []string{"unset", ""} {
			t.Run(secret+"="+value, func(t *testing.T) {
				env := composeEnv()
				if value == "unset" {
					delete(env, secret)
				} else {
					env[secret] = value
				}
				_, err := loadCompose(t, env, "docker-compose.yml", "deploy/compose/runner.yml")
				if err == nil || !strings.Contains(err.Error(), secret) {
					t.Fatalf("loaded without %s: err = %v", secret, err)
				}
			})
		}
	}
}

// secretName is how a variable that holds a credential is named.
var secretName = regexp.MustCompile(`(KEY|KEYS|SECRET|PASSWORD|TOKEN)$`)

// TestComposeSecretsHaveNoDefault reads the files as text: after loading, a
// default is indistinguishable from a value.
func TestComposeSecretsHaveNoDefault(t *testing.T) {
	ref := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}`)
	seen := map[string]bool{}
	for _, f := range []string{"docker-compose.yml", "deploy/compose/runner.yml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			name, rest := m[1], m[2]
			if !secretName.MatchString(name) {
				continue
			}
			seen[name] = true
			if !strings.HasPrefix(rest, ":?") || len(rest) < 3 {
				t.Errorf("%s: ${%s%s}: a secret must be required with ${%s:?message}, never defaulted", f, name, rest, name)
			}
		}
	}
	for _, s := range append(composeSecrets, "YGGDRASIL_API_KEY") {
		if !seen[s] {
			t.Errorf("%s is never referenced", s)
		}
	}
}
