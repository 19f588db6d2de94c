# replayguard — make demo, make test.
SHELL := /bin/bash
GO ?= go
GOLANGCI_LINT_VERSION := v2.15.0
BIN := $(CURDIR)/bin
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
FUZZTIME ?= 30s
BENCHCOUNT ?= 6
# Nested modules with their own go.mod.
MODULES := . bench plugin/traefik plugin/caddy signature/jwtinterop signature/webhookinterop

.PHONY: all build caddy traefik-plugin traefik-e2e load peers reliability demo test test-short lint fmt vet fuzz bench deps tools clean

all: build test

# The version and the VCS revision `replayguard version` reports.
VERSION ?= $(shell git describe --tags 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED ?= $(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.modified=$(MODIFIED)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/replayguard ./cmd/replayguard

## caddy: Caddy with its standard modules and the replayguard module (bin/caddy).
caddy:
	cd plugin/caddy && $(GO) build -o $(BIN)/caddy ./cmd/caddy

## traefik-plugin: the Traefik local-plugin tree (plugins-local/src/<module>, vendored).
traefik-plugin:
	cd plugin/traefik && $(GO) run ./cmd/assemble -o $(CURDIR)/plugins-local

## traefik-e2e: the plugin inside a real Traefik v3 binary (TRAEFIK=path/to/traefik).
traefik-e2e: deps
	@test -n "$(TRAEFIK)" || { echo "set TRAEFIK to a Traefik v3 binary"; exit 1; }
	cd plugin/traefik && TRAEFIK="$(abspath $(TRAEFIK))" $(GO) test -tags traefik -race -count=1 -run '^TestRealTraefik$$' -v .

## demo: gateway + echo upstream on loopback; prints a signed curl and its replay.
demo: build
	$(BIN)/replayguard demo

## test: every test of every module, with the race detector.
test: deps build
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test -race -count=1 ./...); \
	done

test-short:
	$(GO) test -count=1 -short ./...

## deps: installs the servers the tests start (redis-server, PostgreSQL) when missing.
deps:
	@./scripts/install-deps.sh

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

tools: $(GOLANGCI_LINT)

## lint: gofmt, go vet and golangci-lint (pinned) on every module.
lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "== lint $$m"; \
		(cd $$m && $(GO) vet ./... && $(GOLANGCI_LINT) run --allow-parallel-runners ./...); \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: every fuzz target for FUZZTIME (default 30s) each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func \(Fuzz[A-Za-z0-9_]*\)' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

## bench: the benchmark suite against its baselines, summarised by benchstat.
bench:
	@cd bench && ./run.sh $(BENCHCOUNT)

RELIABILITY_REPORT ?= $(BIN)/reliability.md

## reliability: the reliability suite, full form (about fifteen minutes); its figures go to RELIABILITY_REPORT.
## make test runs its short form (about two and a half minutes).
reliability: deps
	@mkdir -p $(BIN); rm -f $(RELIABILITY_REPORT)
	RELIABILITY=full RELIABILITY_REPORT=$(RELIABILITY_REPORT) $(GO) test -race -count=1 -timeout 40m -v ./reliability/

## load: the binary under load (memory, Redis exact, Redis Bloom) against a no-op upstream.
load:
	@bench/load.sh

## peers: the binary and the Caddy module beside a bare Go proxy, Caddy and nginx, interleaved (WRITE=1: into BENCHMARKS.md).
peers:
	@bench/peers.sh

clean:
	rm -rf $(BIN)
