# telguard — see README.md. `make run` starts the daemon on built-in
# defaults; `make test` installs what the tests need and runs them all.
GO          ?= go
STATICCHECK_VERSION ?= v0.8.2
GOBIN       ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: all build run test unit lint tools deps bench fuzz clean

all: build

build:
	$(GO) build -o bin/telguard ./cmd/telguard

run:
	$(GO) run ./cmd/telguard serve

# Everything CI runs: tools, lint, then every test with the race detector.
test: deps lint unit

unit:
	$(GO) test -race -count=1 -timeout 30m ./...

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

tools: $(STATICCHECK)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# System packages the tests need: gcc (for -race) and SIPp (sip-tester).
deps:
	@scripts/deps.sh

bench:
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh

clean:
	rm -rf bin
