# websocket-pool: `make run` starts the data plane, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck layers workflows pytest install lock redis-server \
	cluster-prerequisites testenv js-client peers bench image base-image clean reference

run: $(STAMP)  ## the whole data plane in one process (gateway + 3 nodes, in-memory engine)
	$(BIN)/wspool dev

test: lint typecheck layers workflows pytest  ## everything CI runs

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

reference: $(STAMP)  ## docs/configuration.md, rendered from the settings declarations
	$(BIN)/python -m wspool.reference > docs/configuration.md

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

workflows: testenv  ## actionlint on .github/workflows (built by tools/testenv.sh)
	"$$(tools/testenv.sh --print-dir)/actionlint" -no-color

# The operator and end-to-end tiers need the Kubernetes binaries and the real cluster's Debian
# packages, the compose tier a container engine, the JavaScript client's tests its npm dev
# dependencies and Chromium (the client's and the dashboard's browser tests); under `make`
# their absence is a failure.
pytest: $(STAMP) redis-server cluster-prerequisites testenv js-client
	WSPOOL_TESTENV_BIN="$$(tools/testenv.sh --print-dir)" WSPOOL_REQUIRE_KUBERNETES=1 \
		WSPOOL_REQUIRE_CONTAINERS=1 WSPOOL_REQUIRE_JS=1 $(BIN)/pytest $(PYTEST_ARGS)

redis-server:  ## tests start their own Redis from this binary, on free ports
	@scripts/ensure-redis-server.sh

cluster-prerequisites:  ## Debian packages of the real cluster (tests/e2e) and Chromium (root or sudo)
	@scripts/ensure-cluster-packages.sh

testenv:  ## build the missing Kubernetes test binaries (docs/testenv.md); prints their folder
	@tools/testenv.sh

# The one image of every part, from the Dockerfile, with podman when installed, else docker.
# The name is fully qualified, as Kubernetes normalizes the chart's acc/websocket-pool, so that
# containerd (and kind) find an image loaded into them under the name the pods ask for.
IMAGE            ?= docker.io/acc/websocket-pool:dev
BASE_IMAGE       ?=
CONTAINER_ENGINE ?=

image:  ## build $(IMAGE); BASE_IMAGE=localhost/wspool-base:bookworm builds offline (make base-image)
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) tools/build-image.sh -t $(IMAGE) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		$(if $(filter localhost/%,$(BASE_IMAGE)),--pull=never) .

base-image:  ## a Debian bookworm base image from Debian packages (debootstrap; root); prints its name
	@tools/base-image.sh

JS_CLIENT := clients/js
DASHBOARD := clients/dashboard

# The JavaScript client's dev dependencies (typescript, playwright-core) and the dashboard's
# (uplot, esbuild, typescript, playwright-core), each from its lock file. The client's
# compiled modules are committed in src/wspool/gateway/static/, the dashboard's bundle in
# static/dashboard/ (`npm run build` in each folder writes them; tests check they equal a
# fresh build), so `pip install .` needs no Node.js.
js-client: $(JS_CLIENT)/node_modules/.package-lock.json $(DASHBOARD)/node_modules/.package-lock.json  ## npm ci in clients/js and clients/dashboard (their tests)

$(JS_CLIENT)/node_modules/.package-lock.json: $(JS_CLIENT)/package-lock.json
	npm ci --prefix $(JS_CLIENT) --no-audit --no-fund --loglevel=error

$(DASHBOARD)/node_modules/.package-lock.json: $(DASHBOARD)/package-lock.json
	npm ci --prefix $(DASHBOARD) --no-audit --no-fund --loglevel=error

PEER_NODE := src/wspool/bench/peers/node

# The Node.js peer's npm dependencies (in its folder, ignored by git), and Centrifugo built with
# `go install` at its pinned version into the bench cache (~/.cache/wspool-bench; Go 1.26+).
peers: $(PEER_NODE)/node_modules/.package-lock.json $(STAMP)  ## the benchmark peers (docs/benchmarks.md)
	$(BIN)/python -m wspool.bench.peers centrifugo

$(PEER_NODE)/node_modules/.package-lock.json: $(PEER_NODE)/package-lock.json
	npm ci --prefix $(PEER_NODE) --no-audit --no-fund --loglevel=error

bench: $(STAMP) redis-server peers  ## the standard benchmark set (docs/benchmarks.md); results in bench-results/
	scripts/bench.sh $(BENCH_ARGS)

lock:  ## re-pin every dependency (with hashes) after editing pyproject.toml
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--generate-hashes --quiet -o requirements.lock
	$(PYTHON) -m uv pip compile pyproject.toml --extra all --python-version 3.11 \
		--generate-hashes --quiet -o requirements-runtime.lock  # what the image installs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
