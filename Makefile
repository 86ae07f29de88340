# The two commands a newcomer needs: `make run` and `make test`.
# Everything else is installed from the project's own files on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint testenv system-deps realnode-deps realnode realnode-up realnode-down browser-deps extension js-deps sdk-js bench manifests chart-lint image clean jaeger-bin jaeger

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,operator]'
	touch $(STAMP)

## run: the all-in-one hub on port 3000 (in-process bus unless REDIS_URL is set)
run: $(STAMP)
	$(VENV)/bin/semantest-server

## system-deps: redis-server, redis-sentinel and nginx from Debian, only when missing
system-deps:
	@command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null && \
	  command -v nginx >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq redis-server redis-sentinel nginx-light)

## realnode-deps: what the real-node tier runs on, from Debian (root only; only when missing):
## runc, CNI plugins, buildah (image builds without a Docker engine), mmdebstrap (the base
## image), iptables and conntrack (kube-proxy)
REALNODE_PKGS := runc containernetworking-plugins buildah mmdebstrap iptables conntrack
realnode-deps:
	@dpkg-query -W -f='$${Status}\n' $(REALNODE_PKGS) 2>/dev/null | grep -c 'ok installed' \
	  | grep -qx $(words $(REALNODE_PKGS)) || (apt-get update -qq -o DPkg::Lock::Timeout=600 && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
	  --no-install-recommends $(REALNODE_PKGS))

## browser-deps: Chromium from Debian for the browser tests (only when missing; as root)
browser-deps:
	@if test -x /usr/lib/chromium/chromium; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser-deps: not root, no Chromium: browser tests skip"; \
	else apt-get update -qq -o DPkg::Lock::Timeout=600 && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium; fi

## extension: the Manifest V3 extension, unpacked, in extension/dist/ (docs/extension.md)
extension: extension/node_modules/.package-lock.json
	cd extension && node build.mjs

extension/node_modules/.package-lock.json: extension/package.json extension/package-lock.json
	cd extension && npm ci --no-audit --no-fund --silent

## js-deps: the official socket.io-client, pinned by tests/js/package-lock.json
js-deps: tests/js/node_modules/.package-lock.json

tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --silent

## sdk-js: the JS/TS SDK (@semantest/client) built into sdk/js/dist by its pinned typescript
sdk-js: sdk/js/dist/index.js

sdk/js/dist/index.js: sdk/js/node_modules/.package-lock.json sdk/js/tsconfig.json $(wildcard sdk/js/src/*.ts)
	cd sdk/js && node_modules/.bin/tsc -p tsconfig.json

sdk/js/node_modules/.package-lock.json: sdk/js/package.json sdk/js/package-lock.json
	cd sdk/js && npm ci --no-audit --no-fund --silent

## testenv: Kubernetes control plane binaries (built once, cached outside the repo)
testenv: $(STAMP)
	@bash tests/k8s/controlplane/testenv.sh

## jaeger-bin: the Jaeger v2 all-in-one binary the observability tests run (built once from its
## Go module, cached outside the repo by version)
jaeger-bin:
	@bash tests/observability/jaeger/jaeger.sh >/dev/null

## jaeger: Jaeger (query API and UI on :16686, OTLP on :4317/:4318) and the all-in-one hub on
## :3000 sending it every trace; Ctrl-C stops both
jaeger: $(STAMP) jaeger-bin
	bash tests/observability/jaeger/run.sh

## bench: the hub against a Node relay and a raw Redis-stream relay, side by side (< 5 min);
## BENCH_ARGS="--profile soak" for the long version, "--py-spy" for profiles
bench: $(STAMP) system-deps
	bash bench/bench.sh $(BENCH_ARGS)

## manifests: regenerate manifests/install.yaml from the chart
manifests: $(STAMP) testenv
	bash manifests/generate.sh

## chart-lint: helm lint --strict and the packaging tests (no API server)
chart-lint: $(STAMP) testenv
	$(PY) -m pytest -q -p no:cacheprovider tests/chart

## image: the one image for the hub and the operator, built with buildah from the Dockerfile on
## a base made from Debian packages (no Docker engine, no registry; root; cached, see
## docs/kubernetes.md). With Docker: `docker build -t semantest-hub .`
image: realnode-deps
	@bash tests/realnode/images/build.sh >/dev/null

## realnode: what the real-node tier runs (root): the Debian packages, the node's binaries
## (kubelet, kube-scheduler, kube-proxy, containerd, CoreDNS; built once, cached with the
## control plane) and the images
realnode: $(STAMP) realnode-deps image
	@bash tests/k8s/controlplane/testenv.sh --node >/dev/null

## realnode-up: a one-node cluster for debugging, in the foreground (Ctrl-C or
## `make realnode-down` stops it and sweeps everything); prints its KUBECONFIG
realnode-up: realnode
	$(PY) -m tests.realnode.cluster up

## realnode-down: stop a node started by realnode-up, and sweep what a killed one left
realnode-down:
	$(PY) -m tests.realnode.cluster down

lint: $(STAMP)
	$(VENV)/bin/ruff check services operator tests bench
	$(VENV)/bin/lint-imports

## test: everything CI runs (as root, the real-node tier too: `make realnode` first)
REALNODE := $(if $(filter 0,$(shell id -u)),realnode)
test: $(STAMP) system-deps browser-deps extension js-deps sdk-js testenv jaeger-bin $(REALNODE) lint
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) tests/js/node_modules bench/node_modules extension/node_modules extension/dist \
	  sdk/js/node_modules sdk/js/dist
