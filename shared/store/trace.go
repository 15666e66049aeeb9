package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeRedis is the instrumentation scope of the Redis command spans.
const ScopeRedis = "github.com/yggdrasil-cp/yggdrasil/shared/store/redis"

// Trace adds a hook to the connection that records each command, pipeline and
// transaction as a client span, but only under a span that is being recorded
// (a request's, a delivery's): background loops that poll Redis without a
// span (the sweeper's tick, the relay's XREADGROUP, asynq) cost one context
// lookup per command and make no traces of their own.
//
// A span carries the command name and, for a script, the script's name
// (db.stored_procedure.name); never keys, arguments or values, which hold
// token hashes and payloads. Call it once per Conn, where it is made
// (svcmain, devrun), not where it is shared.
func (c *Conn) Trace(tp trace.TracerProvider) {
	rdb := c.rdb
	h := &redisHook{tracer: tp.Tracer(ScopeRedis), scripts: ScriptNames()}
	h.base = []attribute.KeyValue{semconv.DBSystemNameRedis}
	if cl, ok := rdb.(*redis.Client); ok {
		if host, port, err := net.SplitHostPort(cl.Options().Addr); err == nil {
			h.base = append(h.base, semconv.ServerAddress(host))
			if p, err := strconv.Atoi(port); err == nil {
				h.base = append(h.base, semconv.ServerPort(p))
			}
		}
	}
	rdb.AddHook(h)
}

type redisHook struct {
	tracer  trace.Tracer
	scripts map[string]string // sha1 -> name
	base    []attribute.KeyValue
}

func (h *redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !trace.SpanFromContext(ctx).IsRecording() || connSetup[cmd.Name()] {
			return next(ctx, cmd)
		}
		op := strings.ToUpper(cmd.Name())
		name, attrs := op, make([]attribute.KeyValue, 0, len(h.base)+2)
		attrs = append(attrs, h.base...)
		attrs = append(attrs, semconv.DBOperationName(op))
		if script := h.scriptName(cmd); script != "" {
			name = op + " " + script
			attrs = append(attrs, semconv.DBStoredProcedureName(script))
		}
		ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		err := next(ctx, cmd)
		endRedisSpan(span, err)
		return err
	}
}

func (h *redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !trace.SpanFromContext(ctx).IsRecording() || allConnSetup(cmds) {
			return next(ctx, cmds)
		}
		attrs := make([]attribute.KeyValue, 0, len(h.base)+2)
		attrs = append(attrs, h.base...)
		attrs = append(attrs, semconv.DBOperationName("PIPELINE"), semconv.DBOperationBatchSize(len(cmds)))
		ctx, span := h.tracer.Start(ctx, "PIPELINE", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		err := next(ctx, cmds)
		endRedisSpan(span, err)
		return err
	}
}

// connSetup are the commands go-redis sends when it opens a connection
// (inside whatever request needed one): not the request's work, AUTH
// carries the password, and CLIENT SETINFO fails on Redis < 7.2 by design.
var connSetup = map[string]bool{"hello": true, "auth": true, "select": true, "client": true, "readonly": true}

func allConnSetup(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !connSetup[c.Name()] {
			return false
		}
	}
	return len(cmds) > 0
}

// scriptName names the script an EVALSHA or EVAL runs ("" for other commands
// and for scripts that are not the store's).
func (h *redisHook) scriptName(cmd redis.Cmder) string {
	args := cmd.Args()
	if len(args) < 2 {
		return ""
	}
	switch cmd.Name() {
	case "evalsha", "evalsha_ro":
		if sha, ok := args[1].(string); ok {
			return h.scripts[sha]
		}
	case "eval", "eval_ro": // the NOSCRIPT fallback carries the source
		if src, ok := args[1].(string); ok {
			sum := sha1.Sum([]byte(src))
			return h.scripts[hex.EncodeToString(sum[:])]
		}
	}
	return ""
}

// endRedisSpan ends span, marking a failure with the error's class only: a
// Redis error message may quote a script's values. NOSCRIPT is classed but
// not an error: go-redis answers it by sending the script with EVAL, the
// next span.
func endRedisSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, redis.Nil) {
		class := "redis"
		var rerr redis.Error
		if errors.As(err, &rerr) {
			if prefix, _, _ := strings.Cut(rerr.Error(), " "); prefix != "" {
				class = prefix // ERR, NOSCRIPT, WRONGTYPE, ...
			}
		} else if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			class = "canceled"
		} else {
			class = "connection"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(class))
		if class != "NOSCRIPT" {
			span.SetStatus(codes.Error, class)
		}
	}
	span.End()
}
