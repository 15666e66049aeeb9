package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func (a *app) json(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, columns aligned like kubectl's.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// age is kubectl's AGE: 45s, 3m, 2h, 4d; "<none>" for no time.
func (a *app) age(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	d := a.now().Sub(*t)
	if d < 0 {
		d = -d
		return "in " + short(d)
	}
	return short(d)
}

func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) runnerRows(rs []wire.RunnerInfo) ([]string, [][]string) {
	header := []string{"ID", "NAME", "STATUS", "REALM", "VERSION", "TASKS", "LAST-HEARTBEAT"}
	if a.wide {
		header = append(header, "ACTIVITY", "EPOCH", "LEASE-EXPIRES", "ENDPOINT", "PENDING-UPDATE")
	}
	var rows [][]string
	for _, r := range rs {
		row := []string{r.ID, r.Name, string(r.Status), dash(r.Realm), r.Version, fmt.Sprint(r.TasksRunning), a.age(r.LastHeartbeat)}
		if a.wide {
			upd := "-"
			if r.PendingUpdate != nil {
				upd = r.PendingUpdate.Version
			}
			row = append(row, dash(string(r.Activity)), fmt.Sprint(r.LeaseEpoch), a.age(r.LeaseExpiresAt), dash(r.Endpoint), upd)
		}
		rows = append(rows, row)
	}
	return header, rows
}

func (a *app) taskRows(ts []wire.RunnerTask) ([]string, [][]string) {
	header := []string{"ID", "RUNNER", "TYPE", "STATUS", "AGE"}
	if a.wide {
		header = append(header, "STARTED", "FINISHED", "TIMEOUT-MS", "ERROR")
	}
	var rows [][]string
	for _, t := range ts {
		created := t.CreatedAt
		row := []string{t.ID, t.RunnerID, t.Type, string(t.Status), a.age(&created)}
		if a.wide {
			row = append(row, a.age(t.StartedAt), a.age(t.FinishedAt), fmt.Sprint(t.TimeoutMs), dash(t.Error))
		}
		rows = append(rows, row)
	}
	return header, rows
}

func (a *app) printRunners(rs []wire.RunnerInfo) error {
	if a.output == "json" {
		if rs == nil {
			rs = []wire.RunnerInfo{}
		}
		return a.json(rs)
	}
	h, rows := a.runnerRows(rs)
	return table(a.out, h, rows)
}

func (a *app) printTasks(ts []wire.RunnerTask) error {
	if a.output == "json" {
		if ts == nil {
			ts = []wire.RunnerTask{}
		}
		return a.json(ts)
	}
	h, rows := a.taskRows(ts)
	return table(a.out, h, rows)
}

// printTask shows one task: the table row, then its result or error.
func (a *app) printTask(t wire.RunnerTask) error {
	if a.output == "json" {
		return a.json(t)
	}
	if err := a.printTasks([]wire.RunnerTask{t}); err != nil {
		return err
	}
	if len(t.Result) > 0 {
		fmt.Fprintf(a.out, "result: %s\n", t.Result)
	}
	if t.Error != "" && !a.wide {
		fmt.Fprintf(a.out, "error: %s\n", t.Error)
	}
	return nil
}
