package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// TestRedisMetrics: commands are counted and timed by script name or
// command, pipelines as one, misses are not errors, a wrong-type reply is
// counted as WRONGTYPE and a dead server as a connection error; no key or
// value becomes a label.
func TestRedisMetrics(t *testing.T) {
	srv, rdb := redistest.Start(t)
	conn := store.Wrap(rdb)
	m := conn.Metrics("t_")
	if again := conn.Metrics("other_"); again != m {
		t.Fatal("a second Metrics call on one Conn made a second collector")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	ctx := context.Background()
	st := store.New(conn, store.Options{})
	if _, err := st.Counts(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "secret-key", "top-secret-value", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_ = rdb.Get(ctx, "missing").Err()           // redis.Nil: not an error
	_ = rdb.LPush(ctx, "secret-key", "x").Err() // WRONGTYPE
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	count := func(name string, labels ...string) float64 {
		t.Helper()
		var v float64
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, mt := range f.GetMetric() {
				got := map[string]string{}
				for _, l := range mt.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				ok := true
				for i := 0; i+1 < len(labels); i += 2 {
					ok = ok && got[labels[i]] == labels[i+1]
				}
				if ok {
					v += mt.GetCounter().GetValue() + float64(mt.GetHistogram().GetSampleCount())
				}
			}
		}
		return v
	}
	for _, op := range []string{"set", "get", "lpush", "ping"} {
		if n := count("t_redis_commands_total", "op", op); n != 1 {
			t.Errorf("redis_commands_total{op=%q} = %v, want 1", op, n)
		}
		if n := count("t_redis_command_duration_seconds", "op", op); n != 1 {
			t.Errorf("redis_command_duration_seconds{op=%q} has %v observations, want 1", op, n)
		}
	}
	if n := count("t_redis_commands_total", "op", "pipeline"); n < 1 {
		t.Errorf("Counts (a pipeline) not counted as op=pipeline")
	}
	if n := count("t_redis_errors_total", "op", "lpush", "class", "WRONGTYPE"); n != 1 {
		t.Errorf("WRONGTYPE errors = %v, want 1", n)
	}
	if n := count("t_redis_errors_total", "op", "get"); n != 0 {
		t.Errorf("a miss counted as an error (%v)", n)
	}

	srv.Stop()
	_ = conn.Ping(ctx)
	if n := count("t_redis_errors_total", "op", "ping", "class", "connection"); n < 1 {
		t.Errorf("PING to a stopped server: connection errors = %v, want >= 1", n)
	}
	out, err := testutil.CollectAndFormat(m, expfmt.TypeTextPlain, "t_redis_commands_total", "t_redis_errors_total")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); strings.Contains(s, "secret") {
		t.Errorf("a key or value became a label:\n%s", s)
	}
}
