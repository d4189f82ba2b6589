# Every module in the repo (root and nested), found by its go.mod.
GO      ?= go
MODULES := $(shell find . -name go.mod -not -path './.git/*' | xargs -n1 dirname | sort)
# -race multiplies test time; TESTFLAGS lets a caller add -v or -run.
TESTFLAGS ?=

.PHONY: all test vet fmt-check bench modules

all: test

modules:
	@echo $(MODULES)

## test: gofmt check, go vet and go test -race for every module, each
## step announced with what it does and how long it took. A cold run (empty
## module and build caches) downloads each module's dependencies and
## compiles them with -race, which takes minutes for the heavy ones (etcd,
## xDS, gRPC); a warm run takes a few minutes in all. A module whose tests
## need a server from Debian's packages (ZooKeeper, Redis) has an
## executable testdeps script beside its go.mod: it installs what is missing
## (apt-get, as root) and is run before the module's tests. The root's
## tests also run once without -race (the hash quality tests, computations
## on one goroutine that the race detector slows tenfold, are built only
## then), and its storm tests with GOMAXPROCS 1, 2 and 4.
test: fmt-check
	@set -e; total=$$(date +%s); for m in $(MODULES); do \
		t0=$$(date +%s); \
		if [ -x $$m/testdeps ]; then echo "== $$m: testdeps (servers its tests start)"; $$m/testdeps; fi; \
		echo "== $$m: downloading modules (if missing)"; \
		(cd $$m && $(GO) mod download); \
		echo "== $$m: go vet (compiles the module: minutes on a cold cache for the big ones)"; \
		(cd $$m && $(GO) vet ./...); \
		echo "== $$m: go test -race"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 12m $(TESTFLAGS) ./...); \
		if [ "$$m" = "." ]; then \
			echo "== .: go test without -race (also runs the hash quality tests, built without it)"; \
			$(GO) test -count=1 $(TESTFLAGS) .; \
			echo "== .: storm tests with GOMAXPROCS 1, 2, 4"; \
			$(GO) test -race -count=1 -cpu 1,2,4 -run 'Storm' $(TESTFLAGS) .; \
		fi; \
		echo "== $$m: done in $$(( $$(date +%s) - t0 )) s"; \
	done; echo "== all modules passed in $$(( $$(date +%s) - total )) s"

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the root module's benchmarks (every picker, serial and parallel),
## then BENCHMARKS.md: lb against its peers, speed and quality, from the
## benchmarks module (about 18 minutes on 2 cores; run it on a quiet machine).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -benchtime 250ms .
	cd benchmarks && $(GO) run ./cmd/benchmd -count 5 -benchtime 200ms -httptime 1s -out ../BENCHMARKS.md
