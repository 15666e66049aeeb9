package app_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

var (
	cmpRound  = flag.Duration("cmp.round", 2*time.Second, "BenchmarkHeartbeatCompare: length of one round of one target")
	cmpRounds = flag.Int("cmp.rounds", 2, "BenchmarkHeartbeatCompare: interleaved rounds (echo, straightforward, batched, real, ...)")
	cmpOnly   = flag.String("cmp.only", "", "BenchmarkHeartbeatCompare: run only this target (echo, straightforward, batched, real): to profile one")
	cmpConns  = flag.Int("cmp.conns", 64, "BenchmarkHeartbeatCompare: connections (and closed-loop workers) of the load client")
	cmpLanes  = flag.Int("cmp.lanes", 0, "BenchmarkHeartbeatCompare: HEARTBEAT_PIPELINES of the real target (0: the default)")
	cmpBatch  = flag.Int("cmp.batch", 0, "BenchmarkHeartbeatCompare: HEARTBEAT_BATCH of the real target (0: the default)")
)

// BenchmarkHeartbeatCompare puts the real POST /runners/heartbeat (auth on,
// tracing off) beside three baselines built here, measured in the same run
// with the same load client (fasthttp, -cmp.conns connections, closed loop)
// in interleaved rounds: echo, straightforward, batched, real, echo, ...
//
//   - echo: a fiber handler that decodes the same heartbeat JSON and encodes
//     a heartbeat reply, no Redis (the HTTP+JSON ceiling of this machine);
//   - straightforward: fiber + go-redis, one EVALSHA per request of a script
//     that renews a lease in three commands (SET PX, ZADD, HSET);
//   - batched: the same script, concurrent requests' calls sent in one
//     pipeline by one flusher (whatever queued while the last one ran);
//   - real: the API, every runner with its own token.
//
// Every target runs in this process, over the same redis-server, on the
// same cores as the client. After the rounds, real_half offers half the
// mean real throughput open loop (latency from the scheduled send time, so
// queueing counts) and reports its p99. Run it with
//
//	cd services/api && go test -run '^$' -bench HeartbeatCompare -benchtime 1x ./app/
//
// Each sub-benchmark reports req/s, p50-ms, p99-ms; ns/op is one request's
// share of the round (1 s / req/s).
func BenchmarkHeartbeatCompare(b *testing.B) {
	const runners = 512
	srv, rdb := redistest.Start(b)
	e := startWith(b, srv, rdb, logging.Discard(), []app.Option{app.WithTracing(otel.GetTracerProvider(), otel.GetTextMapPropagator())}, authCfg,
		func(c *config.API) {
			if *cmpLanes > 0 {
				c.HeartbeatPipelines = *cmpLanes
			}
			if *cmpBatch > 0 {
				c.HeartbeatBatch = *cmpBatch
			}
		})
	regs := make([]wire.RegisterRunnerResponse, runners)
	for i := range regs {
		regs[i] = e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: fmt.Sprintf("cmp-%03d", i)})
	}
	bodies := make([][]byte, runners)
	tokens := make([][]byte, runners)
	for i, r := range regs {
		tr := 1
		bodies[i] = []byte(mustJSON(wire.HeartbeatPayload{RunnerID: r.ID, LeaseEpoch: r.LeaseEpoch, Status: wire.RunnerBusy,
			TasksRunning: &tr, Resources: &wire.SystemResources{CPUPercent: 12.5, MemoryPercent: 41.2, MemoryUsedMB: 6600,
				MemoryTotalMB: 16000, DiskPercent: 55.1, LoadAvg: []float64{0.42, 0.51, 0.6}, UptimeSeconds: 86400}}))
		tokens[i] = []byte("Bearer " + r.Token)
	}

	echo := serveFiber(b, echoHeartbeat)
	straight := serveFiber(b, straightHeartbeat(rdb))
	bt := newBaselineBatcher(rdb)
	b.Cleanup(bt.close)
	batched := serveFiber(b, batchedHeartbeat(bt))
	targets := []struct {
		name string
		hc   *fasthttp.HostClient
	}{
		{"echo", loadClient(b, echo)}, {"straightforward", loadClient(b, straight)}, {"batched", loadClient(b, batched)},
		{"real", loadClient(b, strings.TrimPrefix(e.base, "http://"))},
	}
	realRates := []float64{}
	for round := 1; round <= *cmpRounds; round++ {
		for _, tg := range targets {
			if *cmpOnly != "" && tg.name != *cmpOnly {
				continue
			}
			b.Run(fmt.Sprintf("round=%d/target=%s", round, tg.name), func(b *testing.B) {
				_ = rdb.ConfigResetStat(context.Background()).Err()
				cpu0, self0 := redisCPU(b, rdb), processCPU(b)
				r := loadRun(b, tg.hc, bodies, tokens, *cmpConns, *cmpRound, 0)
				r.report(b)
				if r.requests > 0 {
					// This process: the load client and the target together.
					b.ReportMetric((processCPU(b)-self0).Seconds()*1e6/float64(r.requests), "proc-cpu-us/op")
				}
				if r.requests > 0 && tg.name != "echo" {
					b.ReportMetric((redisCPU(b, rdb)-cpu0).Seconds()*1e6/float64(r.requests), "redis-cpu-us/op")
					b.ReportMetric(evalshaMicros(b, rdb), "evalsha-us")
				}
				if tg.name == "real" {
					realRates = append(realRates, r.perSecond)
				}
			})
		}
	}
	var mean float64
	for _, r := range realRates {
		mean += r / float64(len(realRates))
	}
	if mean > 0 && *cmpOnly == "" {
		b.Run("target=real_half", func(b *testing.B) {
			r := loadRun(b, targets[3].hc, bodies, tokens, *cmpConns, *cmpRound, mean/2)
			r.report(b)
			b.ReportMetric(mean/2, "offered/s")
		})
	}
}

// loadClient is the load client of one target: -cmp.conns keep-alive
// connections kept across rounds. Closed with the benchmark, it waits for
// the client's cleaner goroutine to end (goleak).
func loadClient(b *testing.B, addr string) *fasthttp.HostClient {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: *cmpConns, MaxIdleConnDuration: time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxConnWaitTimeout: 10 * time.Second}
	b.Cleanup(func() {
		hc.CloseIdleConnections()
		testkit.Eventually(b, 10*time.Second, func() bool {
			buf := make([]byte, 1<<22)
			return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "HostClient).connsCleaner")
		}, "the fasthttp client's cleaner to stop")
	})
	return hc
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time redis-server used so far (INFO cpu).
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// evalshaMicros is Redis' own time per EVALSHA since the last CONFIG
// RESETSTAT (INFO commandstats usec_per_call): the script, without I/O.
func evalshaMicros(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			for _, kv := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
					f, _ := strconv.ParseFloat(v, 64)
					return f
				}
			}
		}
	}
	return 0
}

// loadResult is one round against one target.
type loadResult struct {
	requests  int
	perSecond float64
	p50, p99  time.Duration
}

func (r loadResult) report(b *testing.B) {
	b.ReportMetric(r.perSecond, "req/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	if r.perSecond > 0 {
		b.ReportMetric(1e9/r.perSecond, "ns/op")
	}
}

// loadRun sends heartbeats to addr over conns connections for d: closed loop
// when rate is 0, else open loop at rate per second (latency then counts
// from each request's scheduled time). Any answer but 200 fails b.
func loadRun(b *testing.B, hc *fasthttp.HostClient, bodies, tokens [][]byte, conns int, d time.Duration, rate float64) loadResult {
	addr := hc.Addr
	var (
		n, failed atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	var due chan time.Time
	if rate > 0 {
		due = make(chan time.Time, 1<<16)
	}
	start := time.Now()
	end := start.Add(d)
	worker := func(w int) {
		defer wg.Done()
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		mine := make([]time.Duration, 0, 1<<14)
		for {
			sent := time.Now()
			if due != nil {
				t, ok := <-due
				if !ok {
					break
				}
				sent = t
			} else if !sent.Before(end) {
				break
			}
			i := int(n.Add(1)) % len(bodies)
			req.Reset()
			req.SetRequestURI("http://" + addr + "/runners/heartbeat")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.SetBytesV("Authorization", tokens[i])
			req.SetBody(bodies[i])
			if err := hc.Do(req, res); err != nil || res.StatusCode() != 200 {
				if failed.Add(1) == 1 {
					b.Errorf("%s: %v status %d %s", addr, err, res.StatusCode(), res.Body())
				}
				continue
			}
			mine = append(mine, time.Since(sent))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	}
	wg.Add(conns)
	for w := 0; w < conns; w++ {
		go worker(w)
	}
	if due != nil {
		// The schedule: every millisecond, the requests that fell due.
		interval := time.Duration(float64(time.Second) / rate)
		next := start
		tick := time.NewTicker(time.Millisecond)
		for now := start; now.Before(end); now = <-tick.C {
			for ; !next.After(now) && next.Before(end); next = next.Add(interval) {
				due <- next
			}
		}
		tick.Stop()
		close(due)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := loadResult{requests: len(lat)}
	if len(lat) > 0 {
		r.perSecond = float64(len(lat)) / elapsed.Seconds()
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}

// serveFiber serves one POST /runners/heartbeat handler on 127.0.0.1 with
// the API's own server settings that matter for speed, and returns its address.
func serveFiber(b *testing.B, h fiber.Handler) string {
	f := fiber.New(fiber.Config{DisableStartupMessage: true, Immutable: true, BodyLimit: 1 << 20,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	f.Post("/runners/heartbeat", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	testkit.Serve(b, func(ctx context.Context) error {
		go func() { <-ctx.Done(); _ = f.Shutdown() }()
		return f.Listener(ln)
	})
	return ln.Addr().String()
}

// baselineReply is what the baselines answer: a heartbeat reply of the same
// shape as the real one.
func baselineReply(c *fiber.Ctx, epoch int64, deadline int64) error {
	return c.JSON(wire.HeartbeatResponse{LeaseExpiresAt: time.UnixMilli(deadline).UTC(), LeaseEpoch: epoch,
		HeartbeatIntervalMs: 15000, Tasks: []wire.RunnerTask{}, CancelTaskIDs: []string{}})
}

func decodeBaseline(c *fiber.Ctx) (wire.HeartbeatPayload, error) {
	var p wire.HeartbeatPayload
	if err := json.Unmarshal(c.Body(), &p); err != nil || p.RunnerID == "" {
		return p, fiber.ErrBadRequest
	}
	return p, nil
}

func echoHeartbeat(c *fiber.Ctx) error {
	p, err := decodeBaseline(c)
	if err != nil {
		return err
	}
	return baselineReply(c, p.LeaseEpoch, time.Now().Add(30*time.Second).UnixMilli())
}

// baselineScript renews a lease in three commands: what a team writes first.
var baselineScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], deadline, ARGV[3])
redis.call('HSET', KEYS[3], 'lastHeartbeat', now, 'resources', ARGV[4])
return deadline
`)

func baselineCall(p wire.HeartbeatPayload) (keys []string, args []any) {
	res, _ := json.Marshal(p.Resources)
	return []string{"bench:lease:" + p.RunnerID, "bench:deadlines", "bench:runner:" + p.RunnerID},
		[]any{p.LeaseEpoch, 30000, p.RunnerID, res}
}

func straightHeartbeat(rdb *redis.Client) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := decodeBaseline(c)
		if err != nil {
			return err
		}
		keys, args := baselineCall(p)
		deadline, err := baselineScript.Run(c.UserContext(), rdb, keys, args...).Int64()
		if err != nil {
			return err
		}
		return baselineReply(c, p.LeaseEpoch, deadline)
	}
}

// baselineBatcher sends the script calls queued by concurrent requests in
// one pipeline: one flusher takes whatever queued while its last pipeline ran.
type baselineBatcher struct {
	rdb  *redis.Client
	in   chan *baselineCallReq
	done chan struct{}
}

type baselineCallReq struct {
	keys []string
	args []any
	out  chan *redis.Cmd
}

func newBaselineBatcher(rdb *redis.Client) *baselineBatcher {
	bt := &baselineBatcher{rdb: rdb, in: make(chan *baselineCallReq, 1024), done: make(chan struct{})}
	_ = baselineScript.Load(context.Background(), rdb).Err()
	go bt.run()
	return bt
}

func (bt *baselineBatcher) close() { close(bt.in); <-bt.done }

func (bt *baselineBatcher) run() {
	defer close(bt.done)
	ctx := context.Background()
	batch := make([]*baselineCallReq, 0, 128)
	for first := range bt.in {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-bt.in:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		pipe := bt.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, r := range batch {
			cmds[i] = baselineScript.EvalSha(ctx, pipe, r.keys, r.args...)
		}
		_, _ = pipe.Exec(ctx)
		for i, r := range batch {
			r.out <- cmds[i]
		}
	}
}

func batchedHeartbeat(bt *baselineBatcher) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := decodeBaseline(c)
		if err != nil {
			return err
		}
		keys, args := baselineCall(p)
		r := &baselineCallReq{keys: keys, args: args, out: make(chan *redis.Cmd, 1)}
		bt.in <- r
		deadline, err := (<-r.out).Int64()
		if err != nil {
			return err
		}
		return baselineReply(c, p.LeaseEpoch, deadline)
	}
}
