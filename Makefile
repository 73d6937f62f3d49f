# Sluice: make demo runs the main job on throwaway databases, make test runs the tests.
GO ?= go
BIN := bin/sluice
TEST_TIMEOUT ?= 40m

.PHONY: all build test demo e2e bench lint deps clean

all: build

deps:
	@./scripts/ensure-postgres.sh
	@$(GO) mod download

build:
	$(GO) build -o $(BIN) ./cmd/sluice

test: deps
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Starts two PostgreSQL clusters and `sluice up`, syncs a database with a
# live workload, shows progress, compares both sides and cleans up.
demo: deps build
	$(GO) run ./internal/demo --sluice $(BIN)

# Long soak and fault runs, kept out of `make test`'s budget: the crash,
# outage and large-transaction tests with many more kills and transactions.
e2e: deps build
	SLUICE_SOAK=1 $(GO) test -count=1 -timeout 120m -run 'Crash|Outage|LargeTransaction' -v ./node/

bench: deps build
	@if [ -f bench/main.go ]; then $(GO) run ./bench; else echo "make bench: the benchmark harness is not built yet (issue 3)"; exit 2; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
