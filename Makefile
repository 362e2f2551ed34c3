# ward — the two commands a new user needs:
#   make up     run a node with embedded defaults (same as: go run ./cmd/ward up)
#   make test   install what the tests need and run every test, end-to-end included

GO ?= go
NPM_DIR := testdata/npm

.PHONY: up test deps vet bench build chromium image docker

up:
	$(GO) run ./cmd/ward up

build:
	$(GO) build -o ward ./cmd/ward

# The real MCP servers the end-to-end tests run behind the gateway, pinned in
# testdata/npm/package-lock.json; the official MCP conformance suite, pinned in
# testdata/conformance/package-lock.json (its tests build ward's own reference
# server, testdata/conformance/refserver).
CONF_DIR := testdata/conformance
deps: nodejs $(NPM_DIR)/node_modules/.installed $(CONF_DIR)/node_modules/.installed chromium docker

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

# The container image's test (cmd/ward TestImage) starts a Docker daemon
# of its own and runs the example deployment with docker-compose: Debian's
# docker.io and docker-compose when missing (as root, like chromium).
docker:
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null || (S=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$S apt-get update && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io docker-compose)

# The container image (Dockerfile): ward built static, and the root
# filesystem the Dockerfile lists staged in a temporary directory that is
# the whole build context, so nothing is pulled from a registry.
IMAGE ?= ward:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image:
	@set -e; ctx=$$(mktemp -d); trap 'rm -rf "$$ctx"' EXIT; \
	test -s $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE): install ca-certificates or set CA_BUNDLE"; exit 1; }; \
	mkdir -p $$ctx/rootfs/usr/local/bin $$ctx/rootfs/etc/ssl/certs $$ctx/rootfs/tmp $$ctx/rootfs/var/lib $$ctx/rootfs/home $$ctx/nonroot/lib/ward $$ctx/nonroot/home/nonroot; \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $$ctx/rootfs/usr/local/bin/ward ./cmd/ward; \
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >$$ctx/rootfs/etc/passwd; \
	printf 'root:x:0:\nnonroot:x:65532:\n' >$$ctx/rootfs/etc/group; \
	printf 'hosts: files dns\n' >$$ctx/rootfs/etc/nsswitch.conf; \
	cp $(CA_BUNDLE) $$ctx/rootfs/etc/ssl/certs/ca-certificates.crt; \
	chmod -R go-w,a+rX $$ctx/rootfs; chmod 1777 $$ctx/rootfs/tmp; chmod 0700 $$ctx/nonroot/lib/ward $$ctx/nonroot/home/nonroot; \
	docker build -f Dockerfile -t $(IMAGE) --label org.opencontainers.image.version=$(VERSION) $$ctx

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
	WARD_REQUIRE_NPM=1 WARD_REQUIRE_POSTGRES=1 WARD_REQUIRE_CHROMIUM=1 WARD_REQUIRE_DOCKER=1 $(GO) test -race -count=1 -timeout 20m ./...
	cd interop/witness && $(GO) test -race -count=1 -timeout 5m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
