# CLAIIM operator. `make help` lists the targets.

# Versions are pinned here and nowhere else.
K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.7.0
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GINKGO_VERSION ?= v2.34.0
HELM_VERSION ?= v3.22.0
OPA_VERSION ?= v1.22.3
GOLANGCI_LINT_VERSION ?= v2.15.0
COREDNS_VERSION ?= 1.15.0

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GINKGO ?= $(LOCALBIN)/ginkgo-$(GINKGO_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)-k$(K8S_VERSION)
OPA ?= $(LOCALBIN)/opa-$(OPA_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# Test flags for `go test` (e.g. TESTFLAGS=-run=TestX). Ginkgo suites run
# under go test too, so one runner prints one summary.
TESTFLAGS ?=

export K8S_VERSION ETCD_VERSION COREDNS_VERSION

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=claiim-manager crd:maxDescLen=512 webhook paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	@$(MAKE) -s chart-sync

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify-fmt
verify-fmt: ## Fail when a Go file is not gofmt-formatted.
	@files=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$files" ]; then echo "Not gofmt-formatted (run make fmt):"; echo "$$files"; exit 1; fi

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when committed generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts/claiim/crds charts/claiim/files)" ]; then \
		echo "Generated files are stale. Run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config charts/claiim/crds charts/claiim/files; git --no-pager diff --stat -- api config charts/claiim/crds charts/claiim/files; exit 1; \
	fi

.PHONY: test
test: verify-fmt vet lint verify-generated envtest helm ## Format check, vet, lint, check generated files, run every suite (envtest + PostgreSQL).
	KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" CONTROLLER_GEN="$(CONTROLLER_GEN)" HELM="$(HELM)" go test ./... -count=1 $(TESTFLAGS)

.PHONY: lint
lint: golangci-lint ## golangci-lint (.golangci.yml): one-way imports, no copied code, no file over 450 lines, the standard checks.
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

.PHONY: test-unit
test-unit: ## Only the tests that need neither envtest nor PostgreSQL.
	go test -short ./... $(TESTFLAGS)

##@ Faults (docs/reliability.md)

# FAULT_TABLE=path also writes the fault table there (Markdown).
FAULT_TABLE ?=
# make soak: how long, how many calls/s (empty: 70% of a peak measured at
# start), and which faults (empty: all, cycled; else comma-separated names).
SOAK_DURATION ?= 10m
SOAK_RATE ?=
SOAK_FAULTS ?=

.PHONY: fault
fault: envtest ## The fault suite alone (it is part of make test), printing its table.
	KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" FAULT_TABLE="$(if $(FAULT_TABLE),$(abspath $(FAULT_TABLE)))" \
		go test ./test/fault/ -run 'TestFaults' -count=1 -v $(TESTFLAGS)

.PHONY: upgrade-test
upgrade-test: envtest ## The upgrade suite alone (it is part of make test): the first release (b457a29, built from git history) upgraded under load.
	KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" go test ./test/upgrade/ -count=1 -v $(TESTFLAGS)

.PHONY: soak
soak: envtest ## Not in make test: the fault harness for SOAK_DURATION at SOAK_RATE, a fault a minute; 0 ALLOW without its row; the gate's memory and goroutines.
	SOAK=1 SOAK_DURATION="$(SOAK_DURATION)" SOAK_RATE="$(SOAK_RATE)" SOAK_FAULTS="$(SOAK_FAULTS)" \
		KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" FAULT_TABLE="$(if $(FAULT_TABLE),$(abspath $(FAULT_TABLE)))" \
		go test ./test/fault/ -run 'TestSoak' -count=1 -v -timeout 3h $(TESTFLAGS)

# Fuzz targets run their seeds in every `go test`; `make fuzz` searches
# beyond them, FUZZTIME per target (FUZZFLAGS=-parallel=1 on a shared
# machine). Minimizing each new input is capped at FUZZMINIMIZETIME, or it
# takes most of a short run. A failing input is saved under the package's
# testdata/fuzz/, where it stays as a test once committed.
FUZZTIME ?= 60s
FUZZMINIMIZETIME ?= 10s
FUZZFLAGS ?=
FUZZ_PKGS ?= ./gate/server ./gate/decide ./gate/chron ./gate/jsonw

.PHONY: fuzz
fuzz: ## Fuzz the request decoder, action patterns, CEL conditions and Chron's encoding, FUZZTIME (60s) per target; not in make test.
	@for pkg in $(FUZZ_PKGS); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target for $(FUZZTIME)"; \
			go test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $(FUZZFLAGS) || exit 1; \
		done; \
	done

##@ Local control plane (the seed's onboarding)

# Flags for `claiim-dev up`, e.g. DEVFLAGS="--gate-port 8281 --console-port 3101"
# beside another local control plane.
DEVFLAGS ?=

# Our binaries build while kube-apiserver, kubectl and etcd build beside
# them (a first run only): the three module graphs share no compiled
# package, so running them side by side costs nothing and keeps both cores
# busy through each one's downloads and single-threaded links.
.PHONY: dev
dev: ## Start etcd, kube-apiserver, PostgreSQL, the manager and the gate locally (idempotent).
	@hack/ensure-deps.sh
	@WITH_KUBECTL=1 hack/envtest-assets.sh >/dev/null & assets=$$!; \
		$(MAKE) --no-print-directory build || { wait $$assets; exit 1; }; \
		wait $$assets
	@KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" $(LOCALBIN)/claiim-dev up $(DEVFLAGS)

.PHONY: dev-down
dev-down: ## Stop everything `make dev` started.
	@$(LOCALBIN)/claiim-dev down 2>/dev/null || go run ./cmd/claiim-dev down

.PHONY: rehearsal
rehearsal: ## Run the seed's steps 3-11 against the local control plane.
	@PATH="$(LOCALBIN):$$PATH" hack/rehearsal.sh

.PHONY: screenshots
screenshots: envtest ## Walk the onboarding in the web console with Chromium and save its pages to docs/images (docs/console.md).
	@hack/ensure-deps.sh browser
	KUBEBUILDER_ASSETS="$$(WITH_KUBECTL=1 hack/envtest-assets.sh)" CLAIIM_SCREENSHOTS="$(CURDIR)/docs/images" CLAIIM_BROWSER_REQUIRED=1 \
		go test ./test/browser/ -run "TestOnboardingInTheConsole|TestApprovalInTheConsole" -count=1

.PHONY: demo
demo: dev rehearsal ## make dev + make rehearsal; leaves everything running.
	@echo; echo "CLAIIM keeps running: 'source .dev/env' to explore with kubectl; 'make dev-down' stops it."
	@. .dev/env && echo "The web console: $$CLAIIM_CONSOLE_URL -- log in with the token in .dev/token-admin (admin@claiim.io) or .dev/token-peer (peer@claiim.io)."

##@ Build

.PHONY: build
# One `go build` for the three: shared packages compile once, with both
# cores busy, and the three links run side by side.
build: ## Build bin/claiim (the image's binary), bin/claiim-dev (the local control plane) and bin/kubectl-claiim (the kubectl plugin).
	@echo "build: claiim, claiim-dev, kubectl-claiim into $(LOCALBIN)/ (one go build)"
	@mkdir -p $(LOCALBIN)
	@CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/ ./cmd/claiim ./cmd/claiim-dev ./cmd/kubectl-claiim

IMG ?= claiim:dev

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine; none runs on the CI machines).
	docker build -t $(IMG) .

# `make image` tags IMG when it is given (make image IMG=...); otherwise a
# full reference, because containerd would read claiim:dev as
# docker.io/library/claiim:dev.
IMAGE_REF ?= $(if $(filter command line environment,$(origin IMG)),$(IMG),docker.io/claiim/claiim:dev)
# The sandbox image the local cluster's containerd is configured with.
PAUSE_IMAGE ?= registry.k8s.io/pause:claiim
export PAUSE_IMAGE
IMAGE_ARCH ?= amd64
IMAGE_DIR = $(LOCALBIN)/images

.PHONY: image
image: ## Build bin/images/claiim.tar (IMAGE_REF) for `ctr -n k8s.io images import`; no Docker engine needed.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags="-s -w" -o $(LOCALBIN)/linux/claiim ./cmd/claiim
	@# distroless static:nonroot's users, so tools that look up 65532 find it.
	@mkdir -p $(IMAGE_DIR)/etc
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >$(IMAGE_DIR)/etc/passwd
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >$(IMAGE_DIR)/etc/group
	go run ./hack/image -o $(IMAGE_DIR)/claiim.tar -ref $(IMAGE_REF) -arch $(IMAGE_ARCH) -tmp \
		-add $(LOCALBIN)/linux/claiim:/claiim -add $(IMAGE_DIR)/etc/passwd:/etc/passwd -add $(IMAGE_DIR)/etc/group:/etc/group \
		-entrypoint /claiim -user 65532:65532 -label org.opencontainers.image.source=https://github.com/claiim/claiim-operator

.PHONY: image-pause
image-pause: ## Build bin/images/pause.tar (PAUSE_IMAGE), the local cluster's sandbox image; no Docker engine needed.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags="-s -w" -o $(LOCALBIN)/linux/pause ./hack/image/pause
	go run ./hack/image -o $(IMAGE_DIR)/pause.tar -ref $(PAUSE_IMAGE) -arch $(IMAGE_ARCH) \
		-add $(LOCALBIN)/linux/pause:/pause -entrypoint /pause -user 65535:65535

.PHONY: run
run: manifests generate ## Run the manager against the cluster in $KUBECONFIG.
	go run ./cmd/claiim manager

##@ A real cluster (root; docs/e2e.md)

.PHONY: cluster-assets
cluster-assets: image image-pause helm ## What the one-node cluster runs: kubelet & co. and CoreDNS from source, the images (cached in bin/).
	@hack/cluster-assets.sh
	@CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(LOCALBIN)/linux/e2e-agent ./test/cluster/agent
	@go run ./hack/image -o $(LOCALBIN)/images/e2e-agent.tar -ref docker.io/claiim/e2e-agent:dev \
		-add $(LOCALBIN)/linux/e2e-agent:/agent -entrypoint /agent -user 65532:65532

.PHONY: cluster-up
cluster-up: cluster-assets ## Start a one-node cluster inside network namespace claiim-cluster; `hack/cluster.sh exec kubectl ...` reaches it.
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the cluster and undo every change it made to the host.
	hack/cluster.sh down

.PHONY: e2e-cluster
e2e-cluster: cluster-assets ## In a fresh cluster: helm and kustomize installs, the seed, an agent pod, faults under load; then the host is checked clean.
	HELM=$(HELM) hack/e2e-cluster.sh

##@ Tools

.PHONY: envtest
envtest: ## Provide kube-apiserver, etcd and kubectl (built from source once, cached in bin/k8s/).
	@WITH_KUBECTL=1 hack/envtest-assets.sh >/dev/null

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	$(call go-install,sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION),$@)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	$(call go-install,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION),$@)

.PHONY: ginkgo
ginkgo: $(GINKGO)
$(GINKGO):
	$(call go-install,github.com/onsi/ginkgo/v2/ginkgo,$(GINKGO_VERSION),$@)

.PHONY: helm
helm: $(HELM)
# Built as upstream builds it: without these ldflags helm assumes Kubernetes
# 1.20 when it has no cluster to ask (helm template, helm lint).
HELM_LDFLAGS = -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,pkg/chartutil pkg/lint/rules,-X helm.sh/helm/v3/$(p).k8sVersionMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) -X helm.sh/helm/v3/$(p).k8sVersionMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))
$(HELM):
	@mkdir -p $(LOCALBIN)/.tmp
	GOBIN=$(LOCALBIN)/.tmp go install -ldflags "$(HELM_LDFLAGS)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/.tmp/helm $@

# go-install installs package $(1) at version $(2) as binary $(3), so a
# version bump never reuses a stale binary.
define go-install
@mkdir -p $(LOCALBIN)/.tmp
GOBIN=$(LOCALBIN)/.tmp go install $(1)@$(2)
mv $(LOCALBIN)/.tmp/$$(basename $(1)) $(3)
endef

##@ Benchmarks (docs/benchmarks.md)

# Flags for `bench run`, e.g. BENCHFLAGS="-sizes 10k -conns 64".
BENCHFLAGS ?=

.PHONY: bench
bench: opa ## The gate (durable Chron) vs OPA vs a no-op server under the same load; one table. BENCH=quick: under 2 minutes.
	hack/ensure-deps.sh
	go build -o $(LOCALBIN)/bench ./hack/bench
	$(LOCALBIN)/bench run -opa $(OPA) $(BENCHFLAGS)

# Flags for `bench scale`, e.g. SCALEFLAGS="-size 10k -gates 1,2,4,8".
SCALEFLAGS ?=

.PHONY: bench-scale
bench-scale: ## 1, 2 and 4 gate processes against one PostgreSQL, nothing pinned: decisions/s, CPU per decision, PostgreSQL's cores busy.
	hack/ensure-deps.sh
	go build -o $(LOCALBIN)/bench ./hack/bench
	$(LOCALBIN)/bench scale $(SCALEFLAGS)

# Flags for `bench writer-floor`, e.g. FLOORFLAGS="-rates 10000 -max-wait 1ns".
FLOORFLAGS ?=

.PHONY: bench-floor
bench-floor: ## The gate's writer alone at fixed rates (no HTTP, no load generator): the floor under the gate's latency.
	hack/ensure-deps.sh
	go build -o $(LOCALBIN)/bench ./hack/bench
	$(LOCALBIN)/bench writer-floor $(FLOORFLAGS)

.PHONY: bench-micro
bench-micro: ## Go benchmarks: the decision function vs OPA's embedded evaluation per fixture size, and the Chron writer.
	hack/ensure-deps.sh
	go test ./hack/bench/fixture -run '^$$' -bench . -benchmem
	go test ./gate/chron -run '^$$' -bench . -benchtime 2s

.PHONY: opa
opa: $(OPA) ## OPA, pinned, for the benchmark.
$(OPA):
	$(call go-install,github.com/open-policy-agent/opa,$(OPA_VERSION),$(OPA))

##@ Helm chart

.PHONY: chart-sync
chart-sync: ## Copy the generated CRDs and the manager's role into the chart (make manifests does it).
	rm -f charts/claiim/crds/*.yaml
	cp config/crd/bases/*.yaml charts/claiim/crds/
	mkdir -p charts/claiim/files
	cp config/rbac/role.yaml charts/claiim/files/manager-role.yaml

.PHONY: helm-lint
helm-lint: helm ## helm lint the chart (strict), with its optional parts on and off.
	$(HELM) lint --strict charts/claiim
	$(HELM) lint --strict charts/claiim --set webhook.certManager.enabled=true
	$(HELM) lint --strict charts/claiim --set postgresql.bundled.enabled=true

.PHONY: verify-chart
verify-chart: helm-lint envtest ## The chart's suite: CRDs in sync, schema, renders dry-run against envtest, the manager under the chart's RBAC.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM="$(HELM)" go test ./test/chart/ -count=1 $(TESTFLAGS)
