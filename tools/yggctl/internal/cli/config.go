package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// Defaults: the ports of `make run`.
const (
	defaultURL        = "http://127.0.0.1:3000"
	defaultSweeperURL = "http://127.0.0.1:3001"
	defaultHooksURL   = "http://127.0.0.1:3002"
)

// Context is one named controller in the config file.
type Context struct {
	URL        string `yaml:"url,omitempty"`
	APIKey     string `yaml:"api-key,omitempty"`
	SweeperURL string `yaml:"sweeper-url,omitempty"`
	HooksURL   string `yaml:"hooks-url,omitempty"`
}

// File is ~/.config/yggctl/config.yaml.
type File struct {
	CurrentContext string             `yaml:"current-context,omitempty"`
	Contexts       map[string]Context `yaml:"contexts,omitempty"`
}

// configPath: YGGCTL_CONFIG, else $XDG_CONFIG_HOME/yggctl/config.yaml, else
// ~/.config/yggctl/config.yaml.
func configPath(env map[string]string) string {
	if p := env["YGGCTL_CONFIG"]; p != "" {
		return p
	}
	if d := env["XDG_CONFIG_HOME"]; d != "" {
		return filepath.Join(d, "yggctl", "config.yaml")
	}
	return filepath.Join(env["HOME"], ".config", "yggctl", "config.yaml")
}

func loadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

func saveFile(path string, f File) error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600) // it holds keys
}

func (f File) names() []string {
	var out []string
	for n := range f.Contexts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
