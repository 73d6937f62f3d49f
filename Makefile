# Sluice: make demo runs the main job on throwaway databases, make test runs the tests.
GO ?= go
BIN := bin/sluice
TEST_TIMEOUT ?= 40m

.PHONY: all build test demo e2e bench lint deps clean fuzz
.PHONY: fuzz

all: build

deps:
	@./scripts/ensure-postgres.sh
	@./scripts/ensure-kcat.sh
	@./scripts/ensure-mariadb.sh
	@./scripts/ensure-chromium.sh
	@$(GO) mod download

build:
	$(GO) build -o $(BIN) ./cmd/sluice

test: deps
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

# Starts two PostgreSQL clusters and `sluice up`, syncs a database with a
# live workload, shows progress, compares both sides and cleans up.
demo: deps build
	$(GO) run ./internal/demo --sluice $(BIN)

# Long soak and fault runs, kept out of `make test`'s budget: the crash,
# outage and large-transaction tests with many more kills and transactions,
# and a 5,000-table task (TestManyTablesADBPG; make test runs 200); and the
# alert rules of deploy/prometheus in a real Prometheus scraping a running
# Sluice (make test skips that test where Prometheus is not installed).
e2e: deps build
	@./scripts/ensure-prometheus.sh
	SLUICE_SOAK=1 $(GO) test -count=1 -timeout 120m -run 'Crash|Outage|LargeTransaction|Cluster|Security|ManyTables|Prometheus' -v ./node/
	$(GO) test -count=1 ./deploy/
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(E2E_FUZZTIME)

# Sluice against PostgreSQL's own ceilings on clusters it starts itself
# (bench/README.md); pass flags with BENCH_FLAGS="--scale 0.05 --reps 1".
BENCH_FLAGS ?=
bench: deps build
	$(GO) run ./bench --sluice $(BIN) $(BENCH_FLAGS)

# The fuzz targets of the parsers that read outside input (task YAML, Raft
# log entries, change batches, pgoutput messages, DSN redaction), each for
# FUZZTIME; go test fuzzes one target per run. New crashers land in the
# package's testdata/fuzz/ and then run with every `go test`.
# A count, not a duration: a time budget sometimes ends a healthy run
# with "context deadline exceeded" (golang/go#75804).
FUZZTIME ?= 100000x
TEST_FUZZTIME ?= 10000x
E2E_FUZZTIME ?= 300000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseTaskSpec$$' -fuzztime $(FUZZTIME) ./apply/destinations
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatchRoundTrip$$' -fuzztime $(FUZZTIME) ./proto
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./coordinator
	$(GO) test -run '^$$' -fuzz '^FuzzPgoutput$$' -fuzztime $(FUZZTIME) ./capture
	$(GO) test -run '^$$' -fuzz '^FuzzRedactDSN$$' -fuzztime $(FUZZTIME) ./proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
