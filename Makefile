# Every entry point of Quibly. The two a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN        := app/bin/quibly
TEST_OUT   ?= $(CURDIR)/test-output
export TEST_OUTPUT_DIR := $(TEST_OUT)

.PHONY: help run build test test-unit test-go test-race test-protocol test-e2e test-cluster e2e-deps services services-down cluster cluster-down bench fmt clean lint

# The addresses of the local services, for the integration tests (see scripts/services.sh).
SERVICES_ENV = eval "$$(scripts/services.sh env)"

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: build ## run Quibly standalone (no services needed) on http://localhost:5000/
	$(BIN)

build: ## build the server binary into app/bin/
	go build -o $(BIN) ./app/cmd/quibly

test: lint test-go test-race test-infra test-protocol test-e2e test-cluster test-ops ## run every test (installs and starts what the tests need)

lint: ## staticcheck over both Go modules and shellcheck over every script (pinned; installed by scripts/lint.sh)
	scripts/lint.sh

test-unit: ## Go unit, table and fuzz-seed tests of app/ and infra/ (integration tests skip without services)
	go vet ./app/... ./infra/...
	go test -count=1 ./app/... ./infra/...

test-go: services aws-local ## Go unit and integration tests against real Redis, Kafka, PostgreSQL and a local AWS API
	go vet ./app/...
	$(SERVICES_ENV) && $(AWS_ENV) && go test -count=1 ./app/...

# The packages whose goroutines meet (the hub, the protocol layers, the backends) run
# again under the race detector; the HTTP API (bcrypt is many times slower under it)
# and the store (its writes are serial) do not, to keep make test within CI's time.
RACE_PACKAGES = ./app/internal/chat/ ./app/internal/engineio/ ./app/internal/socketio/ ./app/internal/broker/ \
	./app/internal/batch/ ./app/internal/sessions/ ./app/internal/presence/ ./app/internal/leader/ \
	./app/internal/limit/ ./app/internal/queue/

test-race: services ## the concurrent packages' tests under the race detector, against the real services
	$(SERVICES_ENV) && go test -race -count=1 $(RACE_PACKAGES)

e2e-deps:
	scripts/e2e-deps.sh

test-protocol: ## the official Engine.IO and Socket.IO protocol test suites against Quibly's protocol layers
	scripts/protocol-suites.sh

test-e2e: build e2e-deps ## protocol, restart and browser tests with the real socket.io-client and Chromium
	mkdir -p $(TEST_OUT)
	cd app/test/e2e && node --test --test-concurrency=1 webmodules.test.mjs protocol.test.mjs restart.test.mjs browser.test.mjs

# The ordering tests pipeline 200 sends per client: past the default rate limit and
# send queue. Nodes the tests restart get the same settings.
CLUSTER_TEST_ENV = MESSAGE_RATE=2000 MESSAGE_BURST=1000 SEND_QUEUE_SIZE=4096

test-cluster: build e2e-deps services ## 3 nodes behind HAProxy: cross-node order, stickiness, leader and failure tests
	mkdir -p $(TEST_OUT)
	QUIBLY_SKIP_BUILD=1 scripts/cluster.sh down
	export QUIBLY_CLUSTER_ENV="$(CLUSTER_TEST_ENV)" QUIBLY_SKIP_BUILD=1 && scripts/cluster.sh up && \
	  $(SERVICES_ENV) && cd app/test/e2e && node --test --test-concurrency=1 cluster.test.mjs; \
	  rc=$$?; cd $(CURDIR) && QUIBLY_SKIP_BUILD=1 scripts/cluster.sh down; exit $$rc

services: ## install and start Redis, PostgreSQL and Kafka on 127.0.0.1 (idempotent)
	scripts/services.sh up

services-down: ## stop the local services
	scripts/services.sh down

cluster: build ## start services, 3 clustered nodes and HAProxy on http://127.0.0.1:8080/
	QUIBLY_SKIP_BUILD=1 scripts/cluster.sh up

cluster-down: ## stop the cluster's nodes (they drain) and HAProxy; services keep running
	scripts/cluster.sh down

# Infrastructure (infra/): ENV names the stack, configured in environments/Pulumi.$(ENV).yaml.
ENV    ?= small
PULUMI ?= pulumi
.PHONY: plan preview up test-infra aws-local aws-local-down checkov
# The local AWS API (moto) the boot-script and ops-adapter tests run against.
AWS_ENV = eval "$$(scripts/aws-local.sh env)"

aws-local: ## install and start moto, a local AWS API, on 127.0.0.1:15000 (idempotent)
	scripts/aws-local.sh up

aws-local-down: ## stop moto
	scripts/aws-local.sh down

# checkov, the IaC scanner run over each tier's plan (waivers: infra/checkov-waivers.yaml).
CHECKOV_ENV = eval "$$(scripts/checkov.sh env)"

checkov: ## install checkov (pinned, from PyPI) into .local/checkov
	scripts/checkov.sh install

need-pulumi = command -v $(PULUMI) >/dev/null 2>&1 || { echo "make $@: the Pulumi CLI is not installed (see README, Infrastructure); 'make plan ENV=$(ENV)' works offline" >&2; exit 1; }

plan: ## offline plan of stack ENV (default small): every resource and a monthly cost estimate, under Pulumi mocks
	go run ./infra/cmd/plan -stack $(ENV) -env-dir environments

preview: ## what `pulumi up` would change on AWS for stack ENV (needs the Pulumi CLI and AWS credentials)
	@$(need-pulumi)
	$(PULUMI) -C infra stack select --create $(ENV)
	$(PULUMI) -C infra preview --stack $(ENV)

up: ## create or update stack ENV on AWS (needs the Pulumi CLI and AWS credentials)
	@$(need-pulumi)
	$(PULUMI) -C infra stack select --create $(ENV)
	$(PULUMI) -C infra up --stack $(ENV)

test-infra: services aws-local checkov ## infra: AWS's rules, the real AWS provider (Terraform: validate, plan, the small tier applied to moto) and checkov over every tier, boot scripts and ops against moto and PostgreSQL, `make plan` ×3
	go vet ./infra/...
	$(SERVICES_ENV) && $(AWS_ENV) && $(CHECKOV_ENV) && go test -count=1 -timeout 20m ./infra/...
	mkdir -p $(TEST_OUT)
	@for s in small medium large; do \
	  $(MAKE) --no-print-directory plan ENV=$$s > $(TEST_OUT)/plan-$$s.txt || { cat $(TEST_OUT)/plan-$$s.txt; exit 1; }; \
	  echo "== make plan ENV=$$s (report: $(TEST_OUT)/plan-$$s.txt)"; \
	  grep -E '^[0-9]+ resources in|TOTAL|^Breakdown|^Versus|^(Within|Differs)' $(TEST_OUT)/plan-$$s.txt; \
	done

bench: ## Quibly vs a Socket.IO 4 + Redis adapter cluster: load sweep, charts, machine limits (~20 min; docs/BENCHMARKS.md)
	scripts/bench.sh

fmt: ## format the Go code
	gofmt -w app

clean: ## remove build output, test output and local state
	rm -rf app/bin $(TEST_OUT) data .local

# Operations (scripts/ops/): ENV=local is the local cluster, any other ENV the Pulumi stack
# of that name on AWS. DRY_RUN=1 prints the steps (and, for AWS, the commands) only.
.PHONY: release deploy rollback scale backup restore rotate-db-password test-ops
OPS_DRY = $(if $(DRY_RUN),--dry-run)
# An operation never falls back to the default stack: ENV must be said.
need-env = test "$(origin ENV)" != file || { echo "make $@: say which ENV (local, or a stack: small, medium, large)" >&2; exit 1; }

release: ## build local release VERSION into .local/releases/VERSION (for make deploy ENV=local)
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=..." >&2; exit 1; }
	scripts/release.sh build $(VERSION)

deploy: ## rolling deploy of VERSION to ENV (local: the cluster), one node at a time; DRY_RUN=1 prints the plan
	@$(need-env)
	@test -n "$(VERSION)" || { echo "usage: make deploy ENV=local VERSION=..." >&2; exit 1; }
	scripts/ops/deploy.sh $(ENV) $(VERSION) $(OPS_DRY)

rollback: ## rolling deploy of the version ENV ran before its last deploy
	@$(need-env)
	scripts/ops/rollback.sh $(ENV) $(OPS_DRY)

scale: ## set ENV's node count to N (removed nodes drain first)
	@$(need-env)
	@test -n "$(N)" || { echo "usage: make scale ENV=local N=..." >&2; exit 1; }
	scripts/ops/scale.sh $(ENV) $(N) $(OPS_DRY)

backup: ## pg_dump (custom format) of ENV's database into .local/backups/quibly-ENV-<timestamp>.dump
	@$(need-env)
	scripts/ops/backup.sh backup $(ENV) $(OPS_DRY)

restore: ## restore FILE into database DB of ENV's server and check the row counts
	@$(need-env)
	@test -n "$(FILE)" -a -n "$(DB)" || { echo "usage: make restore ENV=local FILE=... DB=..." >&2; exit 1; }
	scripts/ops/backup.sh restore $(ENV) $(FILE) $(DB) $(OPS_DRY)

rotate-db-password: ## AWS: a new password for the servers' database role, picked up with no restart
	@$(need-env)
	scripts/ops/rotate-db-password.sh $(ENV) $(OPS_DRY)

# Starts the cluster itself: in `make test` the `cluster` prerequisite already ran for
# test-cluster, which stopped it.
test-ops: build e2e-deps services ## rolling deploy, failed deploy + rollback, scale 3-4-2, backup/restore, under load
	mkdir -p $(TEST_OUT)
	QUIBLY_SKIP_BUILD=1 scripts/cluster.sh up
	$(SERVICES_ENV) && cd app/test/e2e && node --test --test-concurrency=1 ops.test.mjs; \
	  rc=$$?; cd $(CURDIR) && QUIBLY_SKIP_BUILD=1 scripts/cluster.sh down; exit $$rc
