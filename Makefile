# mmsgate: `make` lists the targets.
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: demo
demo: ## send one MMS end to end on embedded Redis and the Sinch simulator
	$(GO) run ./cmd/demo

.PHONY: test
test: ## run every test (real redis-server when installed, else embedded Redis)
	$(GO) run ./scripts/test

.PHONY: test-redis
test-redis: ## the Redis Cluster and Sentinel tests alone (redis-server required; make test runs them too)
	MMSGATE_TEST_REDIS=server $(GO) test -count=1 -run 'TestRedisCluster|TestRedisSentinel|TestSentinelFailover' ./internal/app

.PHONY: bench
bench: ## measure throughput, latency and Redis memory against the targets (BENCH_FLAGS=-quick for a short run)
	$(GO) run ./scripts/bench $(BENCH_FLAGS)

# staticcheck, pinned; `make lint` installs this version with go install.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: scaleout
scaleout: ## 2 APIs and 3 workers on a local 3-primary Redis Cluster: a campaign through each API, each recipient once, the rate held
	$(GO) run ./scripts/bench -only scale $(BENCH_FLAGS)

.PHONY: lint
lint: ## go vet, a gofmt check and staticcheck (installed, pinned, on first use)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	@$(STATICCHECK) -version 2>/dev/null | grep -q "$(STATICCHECK_VERSION)" || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) ./...

.PHONY: build
build: ## build the binaries into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/api ./cmd/worker ./cmd/sinchsim

.PHONY: run/api
run/api: ## run the API with settings from .env
	set -a; . ./.env; set +a; $(GO) run ./cmd/api

.PHONY: run/worker
run/worker: ## run a worker with settings from .env
	set -a; . ./.env; set +a; $(GO) run ./cmd/worker

.PHONY: run/sim
run/sim: ## run the Sinch simulator on 127.0.0.1:9090
	$(GO) run ./cmd/sinchsim
