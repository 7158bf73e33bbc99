# piku: make build | test | stress | demo | bench | fuzz | lint
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/piku/piku/internal/cli.Version=$(VERSION)
GOBIN    := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)

.PHONY: build test stress test-deps lint unit e2e demo bench fuzz clean

## build: the binary, ./bin/piku (static: CGO off)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/piku ./cmd/piku

## test: install what the tests drive, check formatting and lint, run every test with the race detector,
## and the proxy's suite once more on net/http's HTTP/1.1 server (Options.NetHTTP1)
test: test-deps lint
	$(GO) test -race -count=1 -timeout 25m ./...
	PIKU_TEST_NETHTTP1=1 $(GO) test -race -count=1 -timeout 10m ./proxy/...

## stress: the packages that run processes, three times over with the race detector, while two
## CPU-bound processes (started and stopped here) keep every core busy: tests must wait for
## events, never for the scheduler
STRESSPKGS := ./internal/supervisor/ ./internal/uwsgi/ ./internal/daemon/ ./internal/cli/
stress: test-deps
	@hogs=""; trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
	  for i in 1 2; do sh -c 'while :; do :; done' & hogs="$$hogs $$!"; done; \
	  echo "stress: CPU hogs$$hogs running"; \
	  $(GO) test -race -count=3 -timeout 45m $(STRESSPKGS)

## test-deps: install sshd, uwsgi, nginx, pebble, staticcheck, deadcode when missing
test-deps:
	@bash scripts/test-deps.sh

## lint: gofmt, go vet (also for the 32- and 64-bit ARM of a Raspberry Pi), staticcheck, and deadcode for exported code nothing but tests reaches
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOARCH=arm GOARM=7 $(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./...
	staticcheck ./...
	@dead=$$(deadcode ./... | grep -v -e '^internal/pebbletest/' -e '^internal/testdeps/'); \
	  if [ -n "$$dead" ]; then echo "deadcode: unreachable from the piku binary (remove it, or use it):"; echo "$$dead"; exit 1; fi

## demo: run piku end to end on a throwaway root with the bundled example app
demo: build
	@bash scripts/demo.sh

## bench: the measurements behind docs/PERFORMANCE.md
bench: build
	$(GO) run ./internal/bench/supervise -piku ./bin/piku
	$(GO) run ./internal/bench/push -piku ./bin/piku -runs 5
	$(GO) run ./internal/bench/restart -piku ./bin/piku -runs 5
	$(GO) run ./internal/bench/proxyload -duration 5s -conns 64
	$(GO) run ./internal/bench/metricscost -rounds 16 -duration 2s -conns 32
	$(GO) test -run '^$$' -bench . -benchtime 20x ./internal/supervisor/
	$(GO) test -run '^$$' -bench Proxy -benchtime 2s ./proxy/

## fuzz: run every fuzzer for FUZZTIME each (default 30s); corpora live in each package's testdata/fuzz
FUZZTIME ?= 30s
FUZZPKGS := ./procfile/ ./proxy/ ./proxy/internal/h1/ ./proxy/internal/upstream/ ./internal/deploy/ ./internal/layout/ ./internal/cli/
fuzz:
	@for p in $(FUZZPKGS); do for f in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
	  echo "== $$p $$f"; $(GO) test -run "^$$f$$" -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

clean:
	rm -rf bin .demo
