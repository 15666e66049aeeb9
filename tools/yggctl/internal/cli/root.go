// Package cli is yggctl: cobra commands over shared/client. It never reads
// the environment itself (main hands it the map from shared/config) and
// never prints a key.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
)

// Exit codes scripts can use.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
	ExitConflict = 4
)

// usageError is a mistake on the command line (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an exit code chosen by a command (tasks wait on a failed task).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// app is one invocation's state.
type app struct {
	env    map[string]string
	out    io.Writer
	errw   io.Writer
	now    func() time.Time
	output string
	wide   bool

	flagURL, flagKey, flagSweeper, flagHooks, flagContext string
	timeout                                               time.Duration
}

// Run runs yggctl with args and returns its exit code.
func Run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	a := &app{env: env, out: stdout, errw: stderr, now: time.Now}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	var ee exitError
	if !errors.As(err, &ee) || ee.msg != "" {
		fmt.Fprintln(stderr, "yggctl:", err)
	}
	if code == ExitUsage {
		fmt.Fprintln(stderr, "Run 'yggctl --help' for usage.")
	}
	return code
}

func exitCode(err error) int {
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidFilter):
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		return ExitUsage // cobra's own usage errors carry no type
	}
	switch client.StatusOf(err) {
	case http.StatusNotFound:
		return ExitNotFound
	case http.StatusConflict:
		return ExitConflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ExitUsage
	}
	return ExitError
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "yggctl",
		Short: "Operate a Yggdrasil control plane: runners, tasks, updates, quarantine, webhooks, realms",
		Long: `yggctl operates a Yggdrasil control plane over its REST API.

Configuration, first match wins: flags (--url, --api-key, --sweeper-url,
--hooks-url, --context), the environment (YGGDRASIL_URL, YGGDRASIL_API_KEY,
YGGDRASIL_SWEEPER_URL, YGGDRASIL_HOOKS_URL, YGGCTL_CONTEXT), the current
context of ~/.config/yggctl/config.yaml (YGGCTL_CONFIG to move it), then the
ports of 'make run' on 127.0.0.1.

Exit codes: 0 ok, 1 error, 2 usage (or a request the api refused as invalid),
3 not found, 4 conflict.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case "table", "json", "wide":
			default:
				return usagef("-o %q: want table, json or wide", a.output)
			}
			a.wide = a.output == "wide"
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.flagURL, "url", "", "api base URL (YGGDRASIL_URL; default "+defaultURL+")")
	pf.StringVar(&a.flagKey, "api-key", "", "operator key (YGGDRASIL_API_KEY); prefer the environment or the config file: flags show in ps")
	pf.StringVar(&a.flagSweeper, "sweeper-url", "", "sweeper base URL (YGGDRASIL_SWEEPER_URL; default "+defaultSweeperURL+")")
	pf.StringVar(&a.flagHooks, "hooks-url", "", "hooks base URL (YGGDRASIL_HOOKS_URL; default "+defaultHooksURL+")")
	pf.StringVar(&a.flagContext, "context", "", "context of the config file to use (YGGCTL_CONTEXT; default its current-context)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json or wide")
	pf.DurationVar(&a.timeout, "request-timeout", client.DefaultTimeout, "bound of one request")
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json", "wide"}, cobra.ShellCompDirectiveNoFileComp
	})
	root.AddCommand(a.runnersCmd(), a.tasksCmd(), a.updateCmd(), a.admissionCmd(), a.quarantineCmd(), a.hooksCmd(), a.realmsCmd(), a.configCmd())
	groups(root)
	return root
}

// target is the resolved configuration.
type target struct{ url, key, sweeper, hooks string }

func (a *app) resolve() (target, error) {
	f, err := loadFile(configPath(a.env))
	if err != nil {
		return target{}, err
	}
	name := first(a.flagContext, a.env["YGGCTL_CONTEXT"], f.CurrentContext)
	var c Context
	if name != "" {
		var ok bool
		if c, ok = f.Contexts[name]; !ok {
			return target{}, usagef("context %q is not in %s", name, configPath(a.env))
		}
	}
	return target{
		url:     strings.TrimRight(first(a.flagURL, a.env["YGGDRASIL_URL"], c.URL, defaultURL), "/"),
		key:     first(a.flagKey, a.env["YGGDRASIL_API_KEY"], c.APIKey),
		sweeper: strings.TrimRight(first(a.flagSweeper, a.env["YGGDRASIL_SWEEPER_URL"], c.SweeperURL, defaultSweeperURL), "/"),
		hooks:   strings.TrimRight(first(a.flagHooks, a.env["YGGDRASIL_HOOKS_URL"], c.HooksURL, defaultHooksURL), "/"),
	}, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func (a *app) newClient(base, key string) *client.Client {
	return client.New(base, key, client.WithUserAgent("yggctl"), client.WithRetry(client.DefaultRetry),
		client.WithHTTPClient(&http.Client{Timeout: a.timeout}))
}

func (a *app) api() (*client.Client, error) {
	t, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return a.newClient(t.url, t.key), nil
}

func (a *app) sweeper() (*client.Client, error) {
	t, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return a.newClient(t.sweeper, t.key), nil
}

func (a *app) hooks() (*client.Client, error) {
	t, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return a.newClient(t.hooks, t.key), nil
}

// groups makes every command with subcommands print its help when called
// alone (exit 0) and refuse an unknown subcommand (exit 2), as cobra leaves
// nested groups silent.
func groups(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		groups(sub)
	}
	if cmd.HasSubCommands() && cmd.RunE == nil && cmd.Run == nil && cmd.HasParent() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, argv []string) error {
			if len(argv) > 0 {
				return usagef("unknown command %q for %q", argv[0], c.CommandPath())
			}
			return c.Help()
		}
	}
}

// args checks the positional arguments (a wrong count is a usage error).
func args(n int, names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, got []string) error {
		if len(got) != n {
			return usagef("want %d argument(s) (%s), got %d", n, strings.Join(names, " "), len(got))
		}
		return nil
	}
}
