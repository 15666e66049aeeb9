package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func (a *app) runnersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "runners", Aliases: []string{"runner", "rn"}, Short: "List, show and delete runners"}
	var status, realm string
	var limit int
	var watch bool
	var interval time.Duration
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List runners (every page; --watch redraws)", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := client.ParseRunnerFilter(status)
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			show := func(ctx context.Context) error {
				var rs []wire.RunnerInfo
				for r, err := range c.Runners(ctx, client.ListOptions{Status: f, Realm: realm, Limit: 500}) {
					if err != nil {
						return err
					}
					if rs = append(rs, r); limit > 0 && len(rs) >= limit {
						break
					}
				}
				return a.printRunners(rs)
			}
			if !watch {
				return show(cmd.Context())
			}
			return a.watch(cmd.Context(), interval, show)
		},
	}
	list.Flags().StringVar(&status, "status", "", "online, unreachable or offline")
	list.Flags().StringVar(&realm, "realm", "", "only this realm")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	list.Flags().BoolVarP(&watch, "watch", "w", false, "redraw every --interval until Ctrl-C")
	list.Flags().DurationVar(&interval, "interval", 2*time.Second, "redraw interval of --watch")
	_ = list.RegisterFlagCompletionFunc("status", fixed("online", "unreachable", "offline"))

	get := &cobra.Command{
		Use: "get RUNNER", Short: "Show one runner", Args: args(1, "RUNNER"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, err := c.GetRunner(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(r)
			}
			return a.printRunners([]wire.RunnerInfo{r})
		},
	}
	del := &cobra.Command{
		Use: "delete RUNNER", Aliases: []string{"rm"}, Short: "Delete an offline runner now (exit 4 when online or unreachable)", Args: args(1, "RUNNER"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			if err := c.DeleteRunner(cmd.Context(), argv[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "runner %s deleted\n", argv[0])
			return nil
		},
	}
	cmd.AddCommand(list, get, del)
	return cmd
}

// watch clears the screen and redraws every interval until ctx ends (exit 0).
func (a *app) watch(ctx context.Context, interval time.Duration, show func(context.Context) error) error {
	if interval <= 0 {
		return usagef("--interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fmt.Fprint(a.out, "\x1b[H\x1b[2J")
		if err := show(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func fixed(vs ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return vs, cobra.ShellCompDirectiveNoFileComp
	}
}

func (a *app) tasksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tasks", Aliases: []string{"task"}, Short: "Dispatch, show, list, wait for and cancel tasks"}

	var typ, payload, command, idem string
	var timeoutMs int64
	var wait bool
	var waitFor time.Duration
	dispatch := &cobra.Command{
		Use: "dispatch RUNNER", Short: "Dispatch a task (--command is the shell task's payload)", Args: args(1, "RUNNER"),
		Example: `  yggctl tasks dispatch r-1 --command 'echo hello' --wait
  yggctl tasks dispatch r-1 --type echo --payload '{"x":1}' --idempotency-key deploy-42`,
		RunE: func(cmd *cobra.Command, argv []string) error {
			p := wire.DispatchTaskPayload{Type: typ, TimeoutMs: timeoutMs}
			switch {
			case command != "" && payload != "":
				return usagef("--command and --payload exclude each other")
			case command != "":
				if !cmd.Flags().Changed("type") {
					p.Type = "shell"
				}
				b, _ := json.Marshal(map[string]string{"command": command})
				p.Payload = b
			case payload != "":
				if !json.Valid([]byte(payload)) {
					return usagef("--payload is not JSON")
				}
				p.Payload = json.RawMessage(payload)
			}
			if p.Type == "" {
				return usagef("--type (or --command) is required")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			t, _, err := c.Dispatch(cmd.Context(), argv[0], p, idem)
			if err != nil {
				return err
			}
			if !wait {
				return a.printTask(t)
			}
			return a.waitAndPrint(cmd.Context(), c, t.RunnerID, t.ID, waitFor)
		},
	}
	dispatch.Flags().StringVar(&typ, "type", "", "task type (shell with --command)")
	dispatch.Flags().StringVar(&payload, "payload", "", "task payload, JSON")
	dispatch.Flags().StringVar(&command, "command", "", "a shell task's command")
	dispatch.Flags().Int64Var(&timeoutMs, "timeout-ms", 0, "task deadline (0: none)")
	dispatch.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same key returns the same task (and yggctl retries it safely)")
	dispatch.Flags().BoolVar(&wait, "wait", false, "wait for the task to finish; exit 1 unless it succeeded")
	dispatch.Flags().DurationVar(&waitFor, "wait-timeout", 10*time.Minute, "longest --wait")

	var watch bool
	get := &cobra.Command{
		Use: "get RUNNER TASK", Short: "Show one task (--watch: again at every status change, until it finishes)", Args: args(2, "RUNNER", "TASK"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			t, err := c.GetTask(cmd.Context(), argv[0], argv[1])
			if err != nil {
				return err
			}
			if err := a.printTask(t); err != nil || !watch {
				return err
			}
			for !t.Status.Terminal() {
				others := slices.DeleteFunc(append([]wire.TaskStatus{wire.TaskPending, wire.TaskRunning}, client.TerminalStatuses...),
					func(s wire.TaskStatus) bool { return s == t.Status })
				if t, err = c.WaitTaskStatus(cmd.Context(), argv[0], argv[1], others...); err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				if err := a.printTask(t); err != nil {
					return err
				}
			}
			return nil
		},
	}
	get.Flags().BoolVarP(&watch, "watch", "w", false, "print the task again at every status change until it finishes")

	var runner, status, ltype string
	var limit int
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List tasks of every runner, newest first", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := client.ParseTaskStatus(status)
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			var ts []wire.RunnerTask
			for t, err := range c.AllTasks(cmd.Context(), client.TaskFilter{Status: st, RunnerID: runner, Type: ltype, Limit: min(max(limit, 1), 500)}) {
				if err != nil {
					return err
				}
				if ts = append(ts, t); limit > 0 && len(ts) >= limit {
					break
				}
			}
			return a.printTasks(ts)
		},
	}
	list.Flags().StringVar(&runner, "runner", "", "only this runner's")
	list.Flags().StringVar(&status, "status", "", "pending, running, succeeded, failed or cancelled")
	list.Flags().StringVar(&ltype, "type", "", "only this type")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many (0: all)")
	_ = list.RegisterFlagCompletionFunc("status", fixed("pending", "running", "succeeded", "failed", "cancelled"))

	var waitTimeout time.Duration
	waitCmd := &cobra.Command{
		Use: "wait RUNNER TASK", Short: "Wait for a task to finish: exit 0 if it succeeded, 1 if it failed, was cancelled or --timeout passed", Args: args(2, "RUNNER", "TASK"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			return a.waitAndPrint(cmd.Context(), c, argv[0], argv[1], waitTimeout)
		},
	}
	waitCmd.Flags().DurationVar(&waitTimeout, "timeout", 10*time.Minute, "give up after this long (exit 1)")

	var reason string
	cancel := &cobra.Command{
		Use: "cancel RUNNER TASK", Short: "Cancel a pending or running task (exit 4 when it already finished)", Args: args(2, "RUNNER", "TASK"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			t, err := c.CancelTask(cmd.Context(), argv[0], argv[1], reason)
			if err != nil {
				return err
			}
			return a.printTask(t)
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "recorded as the task's error")
	cmd.AddCommand(dispatch, get, list, waitCmd, cancel)
	return cmd
}

func (a *app) waitAndPrint(ctx context.Context, c *client.Client, runnerID, taskID string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t, err := c.WaitTask(ctx, runnerID, taskID)
	if errors.Is(err, context.DeadlineExceeded) {
		return exitError{ExitError, fmt.Sprintf("task %s did not finish within %v", taskID, limit)}
	}
	if err != nil {
		return err
	}
	if err := a.printTask(t); err != nil {
		return err
	}
	if t.Status != wire.TaskSucceeded {
		return exitError{code: ExitError} // the output said it
	}
	return nil
}

func (a *app) updateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Ask runners to update themselves"}
	var version, command string
	req := &cobra.Command{
		Use: "request RUNNER", Short: "Store a pending update; every heartbeat returns it until the runner reports that version", Args: args(1, "RUNNER"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if version == "" {
				return usagef("--version is required")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			r, err := c.RequestUpdate(cmd.Context(), argv[0], wire.RequestUpdatePayload{Version: version, Command: command})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(r)
			}
			fmt.Fprintf(a.out, "runner %s: update to %s requested\n", r.ID, version)
			return nil
		},
	}
	req.Flags().StringVar(&version, "version", "", "the version to reach (required)")
	req.Flags().StringVar(&command, "command", "", "the update command the runner runs")
	cmd.AddCommand(req)
	return cmd
}

func (a *app) admissionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "admission", Short: "Show whether registrations are admitted", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			s, err := c.Admission(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(s)
			}
			return table(a.out, []string{"ADMITTING", "STATE", "REASON"}, [][]string{{fmt.Sprint(s.Admitting), s.State, dash(s.Reason)}})
		},
	}
}

func (a *app) quarantineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "quarantine", Short: "The sweeper's correlated-loss quarantine (--sweeper-url)"}
	show := &cobra.Command{
		Use: "show", Short: "Show the quarantine state", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.sweeper()
			if err != nil {
				return err
			}
			q, err := c.Quarantine(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(q)
			}
			return table(a.out, []string{"ACTIVE", "SINCE", "REASON", "QUARANTINED", "LAST-EXIT"},
				[][]string{{fmt.Sprint(q.Active), a.age(q.Since), dash(q.Reason), fmt.Sprint(q.Quarantined), dash(q.ExitReason)}})
		},
	}
	release := &cobra.Command{
		Use: "release", Short: "Confirm the loss: the runners still quarantined go offline now (exit 4 when none is active)", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.sweeper()
			if err != nil {
				return err
			}
			r, err := c.ReleaseQuarantine(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(r)
			}
			fmt.Fprintf(a.out, "quarantine released: %d runner(s) go offline\n", r.Remaining)
			return nil
		},
	}
	cmd.AddCommand(show, release)
	return cmd
}

func (a *app) hooksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "hooks", Short: "Archived webhook deliveries of the hooks service (--hooks-url)"}
	var page, size int
	archived := &cobra.Command{
		Use: "archived", Short: "List archived deliveries", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.hooks()
			if err != nil {
				return err
			}
			l, err := c.ArchivedDeliveries(cmd.Context(), page, size)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(l)
			}
			var rows [][]string
			for _, d := range l.Items {
				failed := d.LastFailedAt
				rows = append(rows, []string{d.ID, d.EventType, d.URL, fmt.Sprint(d.Attempts), a.age(&failed), dash(d.LastError)})
			}
			if err := table(a.out, []string{"ID", "EVENT", "URL", "ATTEMPTS", "LAST-FAILED", "LAST-ERROR"}, rows); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "page %d, %d of %d\n", l.Page, len(l.Items), l.Total)
			return nil
		},
	}
	archived.Flags().IntVar(&page, "page", 1, "page, from 1")
	archived.Flags().IntVar(&size, "size", 50, "page size, up to 1000")
	var all bool
	replay := &cobra.Command{
		Use: "replay [ID]", Short: "Deliver an archived delivery again (--all: every one)",
		Args: func(_ *cobra.Command, argv []string) error {
			if all == (len(argv) == 1) || len(argv) > 1 {
				return usagef("give one delivery ID or --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.hooks()
			if err != nil {
				return err
			}
			if all {
				n, err := c.ReplayAllDeliveries(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "%d deliveries queued again\n", n)
				return nil
			}
			if err := c.ReplayDelivery(cmd.Context(), argv[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "delivery %s queued again\n", argv[0])
			return nil
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every archived delivery")
	cmd.AddCommand(archived, replay)
	return cmd
}

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Named contexts in ~/.config/yggctl/config.yaml (YGGCTL_CONFIG)"}
	set := &cobra.Command{
		Use: "set-context NAME", Short: "Create or change a context (only the flags given)", Args: args(1, "NAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			path := configPath(a.env)
			f, err := loadFile(path)
			if err != nil {
				return err
			}
			if f.Contexts == nil {
				f.Contexts = map[string]Context{}
			}
			cur := f.Contexts[argv[0]]
			fl := cmd.Flags()
			if fl.Changed("url") {
				cur.URL = a.flagURL
			}
			if fl.Changed("api-key") {
				cur.APIKey = a.flagKey
			}
			if fl.Changed("sweeper-url") {
				cur.SweeperURL = a.flagSweeper
			}
			if fl.Changed("hooks-url") {
				cur.HooksURL = a.flagHooks
			}
			f.Contexts[argv[0]] = cur
			if f.CurrentContext == "" {
				f.CurrentContext = argv[0]
			}
			if err := saveFile(path, f); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "context %s saved in %s\n", argv[0], path)
			return nil
		},
	}
	use := &cobra.Command{
		Use: "use-context NAME", Short: "Make NAME the current context", Args: args(1, "NAME"),
		ValidArgsFunction: a.contextNames,
		RunE: func(cmd *cobra.Command, argv []string) error {
			path := configPath(a.env)
			f, err := loadFile(path)
			if err != nil {
				return err
			}
			if _, ok := f.Contexts[argv[0]]; !ok {
				return exitError{ExitNotFound, fmt.Sprintf("no context %q in %s", argv[0], path)}
			}
			f.CurrentContext = argv[0]
			if err := saveFile(path, f); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "switched to context %s\n", argv[0])
			return nil
		},
	}
	get := &cobra.Command{
		Use: "get-contexts", Short: "List the contexts (keys are never shown)", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadFile(configPath(a.env))
			if err != nil {
				return err
			}
			var rows [][]string
			for _, n := range f.names() {
				cur := ""
				if n == f.CurrentContext {
					cur = "*"
				}
				x := f.Contexts[n]
				key := "<none>"
				if x.APIKey != "" {
					key = "<set>"
				}
				rows = append(rows, []string{cur, n, dash(x.URL), dash(x.SweeperURL), dash(x.HooksURL), key})
			}
			return table(a.out, []string{"CURRENT", "NAME", "URL", "SWEEPER-URL", "HOOKS-URL", "API-KEY"}, rows)
		},
	}
	cur := &cobra.Command{
		Use: "current-context", Short: "Print the current context", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadFile(configPath(a.env))
			if err != nil {
				return err
			}
			if f.CurrentContext == "" {
				return exitError{ExitNotFound, "no current context"}
			}
			fmt.Fprintln(a.out, f.CurrentContext)
			return nil
		},
	}
	cmd.AddCommand(set, use, get, cur)
	return cmd
}

func (a *app) contextNames(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	f, _ := loadFile(configPath(a.env))
	return f.names(), cobra.ShellCompDirectiveNoFileComp
}
