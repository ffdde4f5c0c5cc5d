# Every entry point of Quibly. The two a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN        := app/bin/quibly
TEST_OUT   ?= $(CURDIR)/test-output
export TEST_OUTPUT_DIR := $(TEST_OUT)

.PHONY: help run build test test-unit test-e2e test-browser e2e-deps fmt vet clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: build ## run Quibly standalone (no services needed) on http://localhost:5000/
	$(BIN)

build: ## build the server binary into app/bin/
	go build -o $(BIN) ./app/cmd/quibly

test: test-unit test-e2e ## run every test (installs what the tests need)

test-unit: ## Go unit, table and fuzz-seed tests (nothing running needed)
	go vet ./app/...
	go test -count=1 ./app/...

e2e-deps:
	scripts/e2e-deps.sh

test-e2e: build e2e-deps ## protocol, restart and browser tests with the real socket.io-client and Chromium
	mkdir -p $(TEST_OUT)
	cd app/test/e2e && node --test --test-concurrency=1 protocol.test.mjs restart.test.mjs browser.test.mjs

fmt: ## format the Go code
	gofmt -w app

clean: ## remove build output, test output and local state
	rm -rf app/bin $(TEST_OUT) data .local
