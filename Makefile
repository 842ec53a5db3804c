# Real-Time Bidding Service: developer commands. `make help` lists them.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

MODULES := shared api-gateway broadcast-service archival-worker load-tests infrastructure
SERVICES := api-gateway broadcast-service archival-worker
COMPOSE := docker-compose -f infrastructure/docker/docker-compose.yml
# Static, reproducible binaries; the Dockerfiles use the same flags.
GO_BUILD_FLAGS := -trimpath -ldflags='-s -w'

.PHONY: help deps test build dev dev-deps dev-api dev-broadcast dev-archival compose-env run stop logs fmt lint vet clean

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: ## Install missing system packages (Redis, NATS, PostgreSQL, Chromium, Locust)
	@scripts/install-deps.sh

test: deps ## Run every module's tests with the race detector against real servers
	@scripts/test.sh

build: ## Build the three services into each service's bin/
	@for s in $(SERVICES); do \
		echo "build $$s"; \
		(cd $$s && CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o bin/$$s ./cmd) || exit 1; \
	done

dev: ## Run Redis, NATS, PostgreSQL and all services locally (no Docker); Ctrl-C stops all
	@scripts/dev.sh all

dev-deps: ## Run only Redis, NATS and PostgreSQL locally
	@scripts/dev.sh deps

dev-api: ## Run the API gateway alone (dependencies from make dev-deps)
	@scripts/dev.sh api

dev-broadcast: ## Run the broadcast service alone
	@scripts/dev.sh broadcast

dev-archival: ## Run the archival worker alone
	@scripts/dev.sh archival

# Compose reads its secrets from infrastructure/docker/.env (git ignored);
# missing ones are generated, existing ones kept.
compose-env:
	@scripts/compose-env.sh

run: compose-env ## Start everything with Docker Compose (generates infrastructure/docker/.env first)
	$(COMPOSE) up --build -d

stop: compose-env ## Stop the Docker Compose stack
	$(COMPOSE) down

logs: compose-env ## Follow the Docker Compose logs
	$(COMPOSE) logs -f

fmt: ## Format all Go code
	@gofmt -w $(MODULES)

vet: ## go vet every module
	@for m in $(MODULES); do \
		(cd $$m && if [ -n "$$(go list ./... 2>/dev/null)" ]; then go vet ./...; fi) || exit 1; \
	done

lint: vet ## gofmt check and go vet
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: chaos
chaos: deps ## Kill each component in turn under load, then reconcile every bid (report in load-tests/results/)
	@cd load-tests && go run ./cmd/chaos

.PHONY: infra-check
infra-check: ## Check docker-compose, Terraform (validate, fmt, test) and Dockerfiles offline
	@infrastructure/scripts/infra-check.sh

clean: ## Remove built binaries (keeps .dev data)
	@rm -rf $(addsuffix /bin,$(SERVICES))
