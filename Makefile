# Every module in the repo (root and nested), found by its go.mod.
GO      ?= go
MODULES := $(shell find . -name go.mod -not -path './.git/*' | xargs -n1 dirname | sort)
# -race multiplies test time; TESTFLAGS lets a caller add -v or -run.
TESTFLAGS ?=

.PHONY: all test vet fmt-check bench modules

all: test

modules:
	@echo $(MODULES)

## test: gofmt check, go vet and go test -race for every module. A module
## whose tests need a server from Debian's packages (ZooKeeper, Redis) has
## an executable testdeps script beside its go.mod: it installs what is
## missing (apt-get, as root) and is run before the module's tests.
test: fmt-check
	@set -e; for m in $(MODULES); do \
		if [ -x $$m/testdeps ]; then echo "== $$m: testdeps"; $$m/testdeps; fi; \
		echo "== $$m: go vet"; \
		(cd $$m && $(GO) vet ./...); \
		echo "== $$m: go test -race"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 12m $(TESTFLAGS) ./...); \
	done

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the root module's benchmarks (every picker, serial and parallel),
## then BENCHMARKS.md: lb against its peers, speed and quality, from the
## benchmarks module (about 18 minutes on 2 cores; run it on a quiet machine).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -benchtime 250ms .
	cd benchmarks && $(GO) run ./cmd/benchmd -count 5 -benchtime 200ms -httptime 1s -out ../BENCHMARKS.md
