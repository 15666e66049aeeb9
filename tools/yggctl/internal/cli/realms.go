package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// realmsCmd covers the realm routes (shared/client/realms.go). An issued
// realm key is printed once, as the api returns it once; the caller's own
// key never is.
func (a *app) realmsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "realms", Aliases: []string{"realm"}, Short: "List, create and step realms through their lifecycle; issue and revoke their keys"}

	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List realms (every page)", Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			var all []wire.Realm
			cursor := ""
			for {
				page, err := c.ListRealms(cmd.Context(), cursor, 500)
				if err != nil {
					return err
				}
				all = append(all, page.Realms...)
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			return a.printRealms(all)
		},
	}
	get := &cobra.Command{
		Use: "get REALM", Short: "Show one realm with its runner and task counts", Args: args(1, "REALM"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, err := c.GetRealm(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(r)
			}
			if err := a.printRealms([]wire.Realm{r}); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "runners: %s\n", counts(r.Runners, "online", "unreachable", "offline"))
			fmt.Fprintf(a.out, "tasks: %s\n", counts(r.Tasks, "pending", "running"))
			fmt.Fprintf(a.out, "policies: %s\n", policies(r))
			return nil
		},
	}
	var description, policyJSON string
	create := &cobra.Command{
		Use: "create REALM", Short: "Create a realm (a global operator key)", Args: args(1, "REALM"),
		Example: `  yggctl realms create team-a --description "Team A's runners" --policies '{"maxRunners":50,"leaseTtlMs":30000}'`,
		RunE: func(cmd *cobra.Command, argv []string) error {
			p := wire.CreateRealmPayload{Name: argv[0], Description: description}
			if policyJSON != "" {
				var pol wire.RealmPolicies
				if err := json.Unmarshal([]byte(policyJSON), &pol); err != nil {
					return usagef("--policies: %v", err)
				}
				p.Policies = &pol
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			r, err := c.CreateRealm(cmd.Context(), p)
			if err != nil {
				return err
			}
			return a.printRealm(r)
		},
	}
	create.Flags().StringVar(&description, "description", "", "what the realm is for")
	create.Flags().StringVar(&policyJSON, "policies", "", `policies as JSON: {"leaseTtlMs", "heartbeatIntervalMs", "maxRunners", "massExpiryPercent", "webhookUrls", ...}`)

	step := func(use, short string, do func(a *app, cmd *cobra.Command, name string) (wire.Realm, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " REALM", Short: short, Args: args(1, "REALM"),
			RunE: func(cmd *cobra.Command, argv []string) error {
				r, err := do(a, cmd, argv[0])
				if err != nil {
					return err
				}
				return a.printRealm(r)
			},
		}
	}
	drain := step("drain", "Drain a realm: no registration or dispatch, its agents finish their tasks (exit 4 when not allowed)",
		func(a *app, cmd *cobra.Command, name string) (wire.Realm, error) {
			c, err := a.api()
			if err != nil {
				return wire.Realm{}, err
			}
			return c.DrainRealm(cmd.Context(), name)
		})
	activate := step("activate", "Make a draining realm active again",
		func(a *app, cmd *cobra.Command, name string) (wire.Realm, error) {
			c, err := a.api()
			if err != nil {
				return wire.Realm{}, err
			}
			return c.ActivateRealm(cmd.Context(), name)
		})
	closeCmd := step("close", "Close a realm: its agents deregister and exit",
		func(a *app, cmd *cobra.Command, name string) (wire.Realm, error) {
			c, err := a.api()
			if err != nil {
				return wire.Realm{}, err
			}
			return c.CloseRealm(cmd.Context(), name)
		})
	del := &cobra.Command{
		Use: "delete REALM", Aliases: []string{"rm"}, Short: "Delete a closed realm without live runners (exit 4 otherwise)", Args: args(1, "REALM"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			if err := c.DeleteRealm(cmd.Context(), argv[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "realm %s deleted\n", argv[0])
			return nil
		},
	}
	cmd.AddCommand(list, get, create, drain, activate, closeCmd, del, a.realmKeysCmd())
	return cmd
}

func (a *app) realmKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Aliases: []string{"key"}, Short: "Issue, list and revoke a realm's keys"}
	var name, role string
	issue := &cobra.Command{
		Use: "issue REALM", Short: "Issue a realm key (printed once: store it now)", Args: args(1, "REALM"),
		Example: `  yggctl realms keys issue team-a --name ci --role register`,
		RunE: func(cmd *cobra.Command, argv []string) error {
			if role != wire.RealmRoleRegister && role != wire.RealmRoleOperator {
				return usagef("--role %q: want %s or %s", role, wire.RealmRoleRegister, wire.RealmRoleOperator)
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			k, err := c.IssueRealmKey(cmd.Context(), argv[0], name, role)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(k)
			}
			if err := a.printRealmKeys([]wire.RealmKey{k}); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "key: %s\n(shown once: the controller keeps only its SHA-256)\n", k.Key)
			return nil
		},
	}
	issue.Flags().StringVar(&name, "name", "", "a name for the key")
	issue.Flags().StringVar(&role, "role", wire.RealmRoleRegister, "register or operator")
	_ = issue.RegisterFlagCompletionFunc("role", fixed(wire.RealmRoleRegister, wire.RealmRoleOperator))
	list := &cobra.Command{
		Use: "list REALM", Aliases: []string{"ls"}, Short: "List a realm's keys (never their material)", Args: args(1, "REALM"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			l, err := c.ListRealmKeys(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(l)
			}
			return a.printRealmKeys(l.Keys)
		},
	}
	revoke := &cobra.Command{
		Use: "revoke REALM KEY-ID", Short: "Revoke a realm key: refused from the next request on", Args: args(2, "REALM", "KEY-ID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			if err := c.RevokeRealmKey(cmd.Context(), argv[0], argv[1]); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "realm %s: key %s revoked\n", argv[0], argv[1])
			return nil
		},
	}
	cmd.AddCommand(issue, list, revoke)
	return cmd
}

func (a *app) printRealm(r wire.Realm) error {
	if a.output == "json" {
		return a.json(r)
	}
	return a.printRealms([]wire.Realm{r})
}

func (a *app) printRealms(rs []wire.Realm) error {
	if a.output == "json" {
		if rs == nil {
			rs = []wire.Realm{}
		}
		return a.json(rs)
	}
	header := []string{"NAME", "STATE", "DESCRIPTION", "AGE", "STATE-CHANGED", "BY"}
	if a.wide {
		header = append(header, "POLICIES")
	}
	var rows [][]string
	for _, r := range rs {
		created, changed := r.CreatedAt, r.StateChangedAt
		row := []string{r.Name, string(r.State), dash(r.Description), a.age(&created), a.age(&changed), dash(r.StateChangedBy)}
		if a.wide {
			row = append(row, policies(r))
		}
		rows = append(rows, row)
	}
	return table(a.out, header, rows)
}

func (a *app) printRealmKeys(ks []wire.RealmKey) error {
	if a.output == "json" {
		if ks == nil {
			ks = []wire.RealmKey{}
		}
		return a.json(ks)
	}
	var rows [][]string
	for _, k := range ks {
		created := k.CreatedAt
		rows = append(rows, []string{k.ID, dash(k.Name), k.Role, a.age(&created), a.age(k.LastUsedAt)})
	}
	return table(a.out, []string{"ID", "NAME", "ROLE", "AGE", "LAST-USED"}, rows)
}

// counts is "online=1 unreachable=0 offline=2" in the given order, then any
// other status by name.
func counts(m map[string]int64, order ...string) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		seen[k] = true
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// policies is the realm's policies as compact JSON ("-" for none), with
// webhookSecretSet in place of the write-only secret.
func policies(r wire.Realm) string {
	b, err := json.Marshal(r.Policies)
	if err != nil || string(b) == "{}" {
		if r.WebhookSecretSet {
			return `{"webhookSecretSet":true}`
		}
		return "-"
	}
	if r.WebhookSecretSet {
		return strings.TrimSuffix(string(b), "}") + `,"webhookSecretSet":true}`
	}
	return string(b)
}
