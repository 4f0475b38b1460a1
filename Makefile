# barrel: build, run, test. `make help` lists the targets.
GO       ?= go
BIN      := bin/barrel-peer
DATA     ?= ./barrel-data
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# clean run with "context deadline exceeded" when a duration expires
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 20000x
# Fetched and built through the module proxy by `make lint` (not a
# requirement of go.mod): about a minute the first time, cached after.
GOLANGCI_LINT_VERSION := v2.15.0
# Packages whose code runs goroutines: always tested with the race detector.
RACE_PKGS := ./node/... ./datastore/... ./httpapi/... ./sync/... ./gossip/... ./discovery/... ./couch/...

.PHONY: help build run test test-race fuzz bench lint fmt clean demo lan-test bench-deps bench-compare bench-smoke couch-deps couch-bench

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/barrel-peer
	$(GO) build -o $(BIN) ./cmd/barrel-peer

run: build ## run a peer with an embedded default store in $(DATA), HTTP on 127.0.0.1:7080
	$(BIN) run --data $(DATA)

test: lint couch-deps ## everything CI runs: lint, all tests (with the couch/ Node harness), race tests, short fuzzing, bench smoke
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 40m $(RACE_PKGS)
	$(MAKE) fuzz FUZZTIME=10000x
	$(MAKE) lan-test
	$(MAKE) bench-smoke

fuzz: ## run every fuzz target for $(FUZZTIME) each
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./crdt
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime $(FUZZTIME) ./httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzReadValue$$' -fuzztime $(FUZZTIME) ./datastore/tuple
	$(GO) test -run '^$$' -fuzz '^FuzzParsePointer$$' -fuzztime $(FUZZTIME) ./index
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBlobMessage$$' -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSnapMessage$$' -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReconMessage$$' -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz '^FuzzUnpackChildren$$' -fuzztime $(FUZZTIME) ./sync
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAnnouncement$$' -fuzztime $(FUZZTIME) ./gossip
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBlobMeta$$' -fuzztime $(FUZZTIME) ./node
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBulkDocs$$' -fuzztime $(FUZZTIME) ./couch
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRevsDiff$$' -fuzztime $(FUZZTIME) ./couch
	$(GO) test -run '^$$' -fuzz '^FuzzParseSelector$$' -fuzztime $(FUZZTIME) ./couch

lan-test: build ## mDNS discovery and a cut link across three network namespaces (root, iproute2)
	BIN=$(BIN) bash scripts/lan-test.sh

demo: build ## three peers on loopback: write, replicate, go offline, edit both sides, merge
	BIN=$(BIN) bash scripts/demo.sh

bench: build ## print the machine-readable benchmark lines (see docs/benchmarks.md)
	$(BIN) bench

lint: ## go vet, a gofmt check and golangci-lint (.golangci.yml: layering, the bsync alias, errcheck, staticcheck)
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run ./...

fmt: ## gofmt the tree
	gofmt -w .

clean: ## remove build output
	rm -rf bin

couch-deps: couch/js/node_modules/.package-lock.json ## install the pinned Node harness of the CouchDB-protocol tests (couch/js, npm ci)

# npm writes node_modules/.package-lock.json on every install, so the
# harness is reinstalled only when the lockfile changes.
couch/js/node_modules/.package-lock.json: couch/js/package-lock.json couch/js/package.json
	cd couch/js && npm ci --no-audit --no-fund

couch-bench: build couch-deps ## P1-P3 of the CouchDB protocol: PouchDB against barrel's /couch/ and express-pouchdb, and live through two peers (scripts/couch-bench.sh; N=100000)
	BIN=$(BIN) N=$${N:-100000} bash scripts/couch-bench.sh

bench-deps: ## install the pinned Node harness of the side-by-side benchmarks (bench/, npm ci)
	cd bench && npm ci --no-audit --no-fund

bench-compare: ## barrel vs PouchDB and OrbitDB: medians of 3 runs, table, docs/benchmarks.md section and chart (bench/compare.sh)
	GO=$(GO) bash bench/compare.sh

bench-smoke: build ## barrel's side of bench-compare at 1,000 documents, no npm needed (bench/smoke.sh); C1, C2, W2S small; A1, A2 with an 8 MiB blob
	BIN=$(BIN) bash bench/smoke.sh
	$(BIN) bench --workloads C1,C2,W2S,A1,A2 --n-compact 1000 --compact-revs 3 --n 500 --n-snap 1000 --snap-revs 3 --blob-bytes 8388608
