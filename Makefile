# apigw: control plane (gw-controlplane), edge (gw-edge) and CLI (gwctl).
# Every target has a "## " help line; `make help` lists them.

SHELL      := /bin/bash
GO         ?= go
BIN        := bin
TOOLS      := $(BIN)/tools
BUF_VERSION := v1.75.0
BUF        := $(TOOLS)/buf
STATICCHECK_VERSION := v0.7.0
STATICCHECK := $(TOOLS)/staticcheck
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.buildVersion=$(VERSION)
FUZZTIME   ?= 30s
FUZZ       ?= .
TEST_TIMEOUT ?= 15m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/gw-controlplane, bin/gw-edge and bin/gwctl
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gw-controlplane ./controlplane/cmd/gw-controlplane
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gw-edge ./edge/cmd/gw-edge
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gwctl ./cli/gwctl

.PHONY: run
run: build ## start a control plane, an edge and example backends, push the example config (Ctrl-C stops)
	$(GO) build -o $(BIN)/example-backends ./examples/backends
	./examples/run.sh

# deploy/ is a module of its own (Kubernetes API types, BuildKit's Dockerfile
# parser): every target that covers the code covers it too.
DEPLOY_MOD := deploy

.PHONY: test
test: ## run every test (unit, race-free build; e2e with real processes; deploy/'s module)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	cd $(DEPLOY_MOD) && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: race
race: ## run every test (unit and the multi-process ones under test/) with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: e2e
e2e: ## run only the end-to-end tests against real processes
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s; FUZZ=regexp picks targets); crashers land in testdata/fuzz and replay in make test
	@failed=""; n=0; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' $$dir/*_test.go 2>/dev/null | awk '{print $$2}' | grep -E '$(FUZZ)'); do \
	    n=$$((n+1)); echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg || failed="$$failed $$pkg.$$t"; \
	  done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failing targets:$$failed (inputs in their testdata/fuzz)"; exit 1; fi; \
	echo "fuzz: $$n targets passed"

.PHONY: bench
bench: build ## run Go benchmarks and the load benchmarks under test/, print a table, write bench/<commit>.txt
	./test/bench/run.sh

# Tools are installed once, pinned, into bin/tools (CI caches that folder).
$(BUF):
	GOBIN=$(abspath $(TOOLS)) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(STATICCHECK):
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Jaeger (v1.75.0, pinned in test/tools/jaeger/go.mod, a module of its own so
# its dependencies stay out of ours) for the tracing e2e test. `go install
# pkg@version` refuses it (its go.mod has a replace directive), hence the
# tools module. About 3 minutes of build on 2 cores, once: bin/tools is kept.
JAEGER := $(TOOLS)/jaeger
$(JAEGER): test/tools/jaeger/go.mod test/tools/jaeger/go.sum
	cd test/tools/jaeger && $(GO) build -trimpath -ldflags '-s -w' -o $(abspath $(JAEGER)) github.com/jaegertracing/jaeger/cmd/jaeger

.PHONY: tools
tools: $(JAEGER) ## build the programs the tests start (bin/tools/jaeger), once

.PHONY: generate
generate: $(BUF) ## regenerate proto/gen from proto/ with buf
	$(BUF) generate --template proto/buf.gen.yaml

.PHONY: check-generate
check-generate: generate ## fail when the committed generated code is stale
	git diff --exit-code -- proto/gen
	@test -z "$$(git status --porcelain -- proto/gen)" || { git status --porcelain -- proto/gen; echo "proto/gen has untracked files"; exit 1; }

.PHONY: buf-lint
buf-lint: $(BUF) ## lint and format-check the proto files
	$(BUF) lint
	$(BUF) format -d --exit-code

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd $(DEPLOY_MOD) && $(GO) vet ./... && $(abspath $(STATICCHECK)) ./...

.PHONY: tidy-check
tidy-check: ## fail when go mod tidy would change go.mod or go.sum (also deploy/'s)
	$(GO) mod tidy
	cd $(DEPLOY_MOD) && $(GO) mod tidy
	git diff --exit-code -- go.mod go.sum $(DEPLOY_MOD)/go.mod $(DEPLOY_MOD)/go.sum

.PHONY: verify
verify: check-generate buf-lint lint race tidy-check ## everything CI checks besides the tests

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)/gw-controlplane $(BIN)/gw-edge $(BIN)/gwctl $(BIN)/example-backends
