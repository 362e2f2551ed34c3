# ward — the two commands a new user needs:
#   make up     run a node with embedded defaults (same as: go run ./cmd/ward up)
#   make test   install what the tests need and run every test, end-to-end included

GO ?= go
NPM_DIR := testdata/npm

.PHONY: up test deps vet bench build chromium

up:
	$(GO) run ./cmd/ward up

build:
	$(GO) build -o ward ./cmd/ward

# The real MCP servers the end-to-end tests run behind the gateway, pinned in
# testdata/npm/package-lock.json; the official MCP conformance suite, pinned in
# testdata/conformance/package-lock.json (its tests build ward's own reference
# server, testdata/conformance/refserver).
CONF_DIR := testdata/conformance
deps: nodejs $(NPM_DIR)/node_modules/.installed $(CONF_DIR)/node_modules/.installed chromium

# Node.js and npm run those servers and the suite: installed from Debian
# when missing (as root; otherwise say what to install).
.PHONY: nodejs
nodejs:
	@command -v npm >/dev/null 2>&1 || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || { echo "make test needs Node.js and npm: install them (Debian: apt-get install nodejs npm)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONF_DIR)/node_modules/.installed: $(CONF_DIR)/package.json $(CONF_DIR)/package-lock.json
	cd $(CONF_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The console's browser tests drive Debian's headless Chromium (chromedp).
chromium:
	@command -v chromium >/dev/null || (S=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$S apt-get update && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)

# ./... skips testdata: the conformance reference server is named.
GOFMT_DIRS := cmd internal interop examples bench testdata/conformance/refserver wardauth wardhook
vet:
	@test -z "$$(gofmt -l $(GOFMT_DIRS))" || (echo "gofmt needed:"; gofmt -l $(GOFMT_DIRS); exit 1)
	$(GO) vet ./... ./testdata/conformance/refserver
	cd interop/witness && $(GO) vet ./...

# interop/witness is its own module: it runs ward's witness protocol against
# the reference implementation (github.com/transparency-dev/witness)
# without putting that in ward's build. The store's PostgreSQL tests use
# the server WARD_TEST_POSTGRES names (default: 127.0.0.1:5432, user
# postgres, database test), which CI has: here they fail rather than skip.
test: deps vet
	WARD_REQUIRE_NPM=1 WARD_REQUIRE_POSTGRES=1 WARD_REQUIRE_CHROMIUM=1 $(GO) test -race -count=1 -timeout 20m ./...
	cd interop/witness && $(GO) test -race -count=1 -timeout 5m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
