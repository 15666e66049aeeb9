# Yggdrasil: control plane for fleets of runners. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
MODULES = $(shell $(GO) list -m -f '{{.Dir}}')
# Modules outside the workspace, built on their own (GOWORK=off): the rule
# checks of deploy/prometheus need github.com/prometheus/prometheus, whose
# dependencies would otherwise raise the versions every service builds with.
SOLO_MODULES = deploy/prometheus
BIN := bin
GOTESTFLAGS ?= -count=1 -timeout 20m
# The packages allowed to import go-redis (non-test code): the store, the
# test kit that starts a private redis-server, and the fleet simulator's
# stack, a benchmark harness that reads INFO from the Redis it started. The
# hooks wiring hands the store's client to asynq without importing it. All
# else goes through the store.
REDIS_DOORS = github.com/yggdrasil-cp/yggdrasil/(shared/(store|redistest)|tools/ygg-sim/internal/stack)

.PHONY: help deps build run test test-race chaos bench bench-api bench-overload bench-sweeper bench-hooks bench-fleet lint helm-lint check tidy redis-server promtool clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

deps: ## download every module's dependencies once, so that make test then works offline
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod download); done

build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/api ./services/api
	$(GO) build -o $(BIN)/sweeper ./services/sweeper
	$(GO) build -o $(BIN)/hooks ./services/hooks
	$(GO) build -o $(BIN)/ratatoskr ./runner
	$(GO) build -o $(BIN)/ygg-sim ./tools/ygg-sim
	$(GO) build -o $(BIN)/yggctl ./tools/yggctl

# PROGRESS turns `go build -v`'s package names into one "building <pkg>"
# line rewritten in place on a terminal (one line each elsewhere); anything
# else (compile errors, "go: downloading") is printed in full.
PROGRESS = awk -v tty="$$([ -t 1 ] && echo 1)" \
	'/^[^ :\#]+$$/ { n++; if (tty) { printf "\r\033[K  building %s", $$0; fflush() } else print "  building " $$0; next } \
	{ if (tty) printf "\r\033[K"; print; fflush() } \
	END { if (tty) printf "\r\033[K"; if (n) printf "  compiled %d packages\n", n }'

# In run, devrun takes the terminal's foreground in a process group of its
# own (tools/devrun/foreground_linux.go), so Ctrl-C reaches devrun alone: it
# shuts down and exits 0, and make ends quietly instead of dying of SIGINT
# itself (status 130). Were make killed, it would SIGTERM devrun, its direct
# child thanks to exec, which shuts down the same way.
run: ## run the controller (api, sweeper, hooks) on REDIS_URL, else an embedded dev Redis; Ctrl-C stops it
	@mkdir -p $(BIN)
	@echo "run: building the controller into $(BIN)/devrun (the first build compiles every dependency: a minute or two)..."
	@set -o pipefail; $(GO) build -v -o $(BIN)/devrun ./tools/devrun 2>&1 | $(PROGRESS)
	@echo "run: starting $(BIN)/devrun (Ctrl-C stops it)"
	@exec $(BIN)/devrun

redis-server: ## install redis-server through apt when it is missing
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "redis-server missing: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version

# promtool comes from Debian's prometheus package, taken out of the .deb
# rather than installed: the package's post-install would set up and start a
# Prometheus server, which the tests do not want.
promtool: ## install promtool (from Debian's prometheus package) when it is missing
	@command -v promtool >/dev/null 2>&1 || { \
		echo "promtool missing: extracting it from Debian's prometheus package"; \
		d=$$(mktemp -d) && cd $$d && apt-get update -qq && apt-get download -qq prometheus 2>/dev/null && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > promtool && \
		install -m 0755 promtool /usr/local/bin/promtool && rm -rf $$d; }
	@promtool --version | head -1

test: redis-server promtool ## run every module's tests against private redis-servers; ends with "N passed, N failed, N skipped"
	@$(GO) build -o $(BIN)/testsum ./tools/testsum
	@set -o pipefail; status=0; \
		{ for m in $(MODULES); do (cd $$m && $(GO) test -json $(GOTESTFLAGS) ./...) || status=1; done; \
		  for m in $(SOLO_MODULES); do (cd $$m && GOWORK=off $(GO) test -json $(GOTESTFLAGS) ./...) || status=1; done; exit $$status; } \
		| $(BIN)/testsum

test-race: redis-server ## the tests with the race detector
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test -race $(GOTESTFLAGS) ./...); done

chaos: redis-server ## the chaos suite against the real binaries (about 5-10 min): kills, two sweepers, failing receivers, ten Redis restarts; prints one table
	cd e2e && $(GO) test -tags chaos -count=1 -timeout 15m -run '^TestChaos$$' -v . 2>&1 | grep -vE '^\s+time=' | tee /tmp/yggdrasil-chaos.log | grep -E '^\s+\||^(---|===|ok|FAIL|PASS)|chaos_test|chaos_scenarios_test'; exit $${PIPESTATUS[0]}

bench: bench-api bench-sweeper bench-hooks ## every benchmark (figures go in the README)

bench-api: redis-server ## api: heartbeat throughput beside echo/straightforward/batched baselines (interleaved rounds), and over HTTP beside redis PING and EVALSHA ceilings
	cd services/api && $(GO) test -run '^$$' -bench 'HeartbeatCompare' -benchtime 1x ./app/ -cmp.rounds 3
	cd services/api && $(GO) test -run '^$$' -bench 'Heartbeat$$' -benchtime 3s ./app/

# The overload proof with ygg-sim as a separate process (about 3 min): the
# capacity (a closed loop: 64 connections kept busy), then a fleet offering
# about twice it (heartbeat 2 s, lease 4 s), with the limiter and without
# (MAX_INFLIGHT=0). Reports in bench/overload/; the load average is printed
# with each run (the machine is shared: quote ratios).
OVERLOAD_RUNNERS ?= 17000
OVERLOAD_DURATION ?= 30s
OVERLOAD_SIM = $(BIN)/ygg-sim -spawn -bin $(BIN) -quiet -heartbeat-interval-ms 2000 -lease-ttl-ms 4000 -concurrency 1024 -register-rate 2000
bench-overload: build redis-server ## api: capacity, then a ygg-sim fleet offering ~2x it (lease = 2 intervals) with and without the limiter (~3 min)
	@mkdir -p bench/overload
	@uptime; $(BIN)/ygg-sim -spawn -bin $(BIN) -quiet -runners 2000 -heartbeat-interval-ms 100 -lease-ttl-ms 30000 -concurrency 64 \
		-duration 15s -json bench/overload/capacity.json 2>&1 | grep -E 'heartbeat |api  '
	@uptime; $(OVERLOAD_SIM) -runners $(OVERLOAD_RUNNERS) -duration $(OVERLOAD_DURATION) -json bench/overload/limiter.json 2>&1 \
		| grep -A99 '^\s*\[measure\]' | grep -vE '^\s*(register|sweeper|redis +used)'
	@uptime; $(OVERLOAD_SIM) -env MAX_INFLIGHT=0 -runners $(OVERLOAD_RUNNERS) -duration $(OVERLOAD_DURATION) -json bench/overload/no-limiter.json 2>&1 \
		| grep -A99 '^\s*\[measure\]' | grep -vE '^\s*(register|sweeper|redis +used)'
	@uptime

bench-sweeper: redis-server ## sweeper: detection lag p50/p99/max for 10k and 100k leases over 15 s, beside keyspace events alone
	cd services/sweeper && $(GO) test -tags bench -run '^$$' -bench DetectionLag -benchtime 1x -timeout 15m ./internal/sweep/

bench-hooks: redis-server ## hooks: outbox event -> webhook latency, 1,000 simultaneous offline runners
	cd services/hooks && $(GO) test -run '^$$' -bench OfflineToWebhook -benchtime 1x -count 3 ./app/

FLEET_RUNNERS ?= 250000
FLEET_DURATION ?= 90s
FLEET_JSON ?= bench/fleet/steady-$(FLEET_RUNNERS).json
FLEET_FLAGS ?= -spawn -bin $(BIN) -lease-ttl-ms 30000 -heartbeat-interval-ms 15000
bench-fleet: build redis-server ## fleet simulator: 250k runners, 15 s heartbeats, 90 s, on a private redis+api+sweeper (FLEET_FLAGS='-url ... -api-key ...' for another controller)
	@mkdir -p $(dir $(FLEET_JSON))
	$(BIN)/ygg-sim $(FLEET_FLAGS) -scenario steady -runners $(FLEET_RUNNERS) -duration $(FLEET_DURATION) -json $(FLEET_JSON)

lint: ## gofmt and go vet on every module
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do out=$$(cd $$m && $(GO) vet ./... 2>&1) && continue; \
		net=$$(echo "$$out" | grep -m1 -E '$(NETWORK_ERRORS)'); \
		if [ -n "$$net" ]; then echo "make lint: cannot reach the module proxy ($$net); run make deps online first"; exit 1; fi; \
		echo "$$out"; exit 1; done
	@for m in $(SOLO_MODULES); do out=$$(cd $$m && GOWORK=off $(GO) vet ./... 2>&1) && continue; \
		net=$$(echo "$$out" | grep -m1 -E '$(NETWORK_ERRORS)'); \
		if [ -n "$$net" ]; then echo "make lint: cannot reach the module proxy ($$net); run make deps online first"; exit 1; fi; \
		echo "$$out"; exit 1; done

helm-lint: ## helm lint --strict of deploy/helm/yggdrasil (helm built from deploy/test's go.mod, no helm install needed)
	@set -e; cd deploy/test; for v in redis.url=redis://redis:6379/0 redis.embedded.enabled=true; do \
		$(GO) tool helm lint --strict ../helm/yggdrasil --set $$v --set secrets.apiKeys=lint-runner-key-0123456789; done

# What go prints when it needs a module it cannot download: check reports
# these as a network failure, not as a go.mod that tidy would change.
NETWORK_ERRORS = dial tcp|lookup disabled|GOPROXY=off|no such host|i/o timeout|connection refused|TLS handshake|network is unreachable|proxyconnect

check: lint ## lint, import boundaries, and go mod tidy must change nothing
	@for m in $(MODULES); do out=$$(cd $$m && $(GO) mod tidy -diff 2>&1) && continue; \
		net=$$(echo "$$out" | grep -m1 -E '$(NETWORK_ERRORS)'); \
		if [ -n "$$net" ]; then echo "make check: cannot reach the module proxy ($$net); run make deps online first"; exit 1; fi; \
		echo "$$out"; echo "go mod tidy would change $$m"; exit 1; done
	@for m in $(SOLO_MODULES); do out=$$(cd $$m && GOWORK=off $(GO) mod tidy -diff 2>&1) && continue; \
		net=$$(echo "$$out" | grep -m1 -E '$(NETWORK_ERRORS)'); \
		if [ -n "$$net" ]; then echo "make check: cannot reach the module proxy ($$net); run make deps online first"; exit 1; fi; \
		echo "$$out"; echo "go mod tidy would change $$m"; exit 1; done
	@bad=$$(cd shared && $(GO) list -deps ./... | grep -E 'yggdrasil/services/|gofiber|hibiken/asynq' || true); \
		if [ -n "$$bad" ]; then echo "shared must not import services, fiber or asynq:"; echo "$$bad"; exit 1; fi
	@bad=$$(cd shared && $(GO) list -deps ./wire | grep -E 'go-redis|gofiber|asynq' || true); \
		if [ -n "$$bad" ]; then echo "shared/wire must not import redis, fiber or asynq:"; echo "$$bad"; exit 1; fi
	@bad=$$(for m in $(MODULES); do (cd $$m && $(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./...); done \
		| grep 'github.com/redis/go-redis' | cut -d: -f1 | grep -vxE '$(REDIS_DOORS)' || true); \
		if [ -n "$$bad" ]; then echo "only the store talks to Redis; these packages import go-redis:"; echo "$$bad"; exit 1; fi
	@bad=$$(cd shared && $(GO) list -f '{{join .Imports " "}}' ./telemetry | grep -o 'yggdrasil/shared/store' || true); \
		if [ -n "$$bad" ]; then echo "shared/telemetry must not import the store"; exit 1; fi
	@echo "check: ok"

clean: ## remove build output
	rm -rf $(BIN)
