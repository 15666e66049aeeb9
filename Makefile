# Yggdrasil: control plane for fleets of runners. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
MODULES = $(shell $(GO) list -m -f '{{.Dir}}')
BIN := bin
GOTESTFLAGS ?= -count=1 -timeout 20m
# The packages allowed to import go-redis (non-test code): the store, the
# test kit that starts a private redis-server, and the fleet simulator's
# stack, a benchmark harness that reads INFO from the Redis it started. The
# hooks wiring hands the store's client to asynq without importing it. All
# else goes through the store.
REDIS_DOORS = github.com/yggdrasil-cp/yggdrasil/(shared/(store|redistest)|tools/ygg-sim/internal/stack)

.PHONY: help build run test test-race chaos bench bench-api bench-overload bench-sweeper bench-hooks bench-fleet lint helm-lint check tidy redis-server clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/api ./services/api
	$(GO) build -o $(BIN)/sweeper ./services/sweeper
	$(GO) build -o $(BIN)/hooks ./services/hooks
	$(GO) build -o $(BIN)/ratatoskr ./runner
	$(GO) build -o $(BIN)/ygg-sim ./tools/ygg-sim

run: ## run the controller (api, sweeper, hooks) on REDIS_URL, localhost:6379, or an embedded dev Redis
	$(GO) run ./tools/devrun

redis-server: ## install redis-server through apt when it is missing
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "redis-server missing: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version

test: redis-server ## run every module's tests against private redis-servers; ends with "N passed, N failed, N skipped"
	@$(GO) build -o $(BIN)/testsum ./tools/testsum
	@set -o pipefail; status=0; \
		{ for m in $(MODULES); do (cd $$m && $(GO) test -json $(GOTESTFLAGS) ./...) || status=1; done; exit $$status; } \
		| $(BIN)/testsum

test-race: redis-server ## the tests with the race detector
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test -race $(GOTESTFLAGS) ./...); done

chaos: redis-server ## the chaos suite against the real binaries (about 5-10 min): kills, two sweepers, failing receivers, ten Redis restarts; prints one table
	cd e2e && $(GO) test -tags chaos -count=1 -timeout 15m -run '^TestChaos$$' -v . 2>&1 | grep -vE '^\s+time=' | tee /tmp/yggdrasil-chaos.log | grep -E '^\s+\||^(---|===|ok|FAIL|PASS)|chaos_test|chaos_scenarios_test'; exit $${PIPESTATUS[0]}

bench: bench-api bench-sweeper bench-hooks ## every benchmark (figures go in the README)

bench-api: redis-server ## api: heartbeat throughput beside echo/straightforward/batched baselines (interleaved rounds), and over HTTP beside redis PING and EVALSHA ceilings
	cd services/api && $(GO) test -run '^$$' -bench 'HeartbeatCompare' -benchtime 1x ./app/ -cmp.rounds 3
	cd services/api && $(GO) test -run '^$$' -bench 'Heartbeat$$' -benchtime 3s ./app/

bench-overload: redis-server ## api: a simulated fleet offering 2x the measured heartbeat capacity, with and without the admission controller
	cd services/api && $(GO) test -run '^$$' -bench Overload -benchtime 1x -timeout 10m ./app/

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
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

helm-lint: ## helm lint --strict of deploy/helm/yggdrasil (helm built from deploy/test's go.mod, no helm install needed)
	@set -e; cd deploy/test; for v in redis.url=redis://redis:6379/0 redis.embedded.enabled=true; do \
		$(GO) tool helm lint --strict ../helm/yggdrasil --set $$v --set secrets.apiKeys=lint-runner-key-0123456789; done

check: lint ## lint, import boundaries, and go mod tidy must change nothing
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "go mod tidy would change $$m"; exit 1; }; done
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
