# aimesh — the whole vocabulary: `make up` (deploy the dev stack on kind), `make test` (offline).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STACK   ?= dev
# Local state backend: no Pulumi Cloud account is needed for the dev loop.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi
# The dev stack keeps no real secrets; an explicit (empty) passphrase keeps `pulumi` from prompting.
export PULUMI_CONFIG_PASSPHRASE ?=
# The policy pack's config (exemptions, model-namespace selection): the same file in CI.
export POLICY_PACK_CONFIG ?= policy-pack/policy-config.json

.PHONY: help ensure schemas prereqs descriptors up down preview check test e2e e2e-toolchain lint format docs bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt policy-pack/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

ensure: $(VENV)/.installed  ## create .venv and install the pinned dependencies

# The strict schema checks need the upstream CRDs and chart values of the pinned versions
# (tools/upstream-files.toml): copied from a mirror (../shared/upstream, $$AIMESH_UPSTREAM_MIRROR)
# or downloaded, sha256-checked. Without them `make test` stops here and says what to do.
schemas: ensure  ## fill .cache/upstream with the pinned upstream schemas (mirror or download)
	$(PY) -m tools.upstream

prereqs:  ## check the tools `make up` needs and say how to get the missing ones
	@$(PYTHON) tools/prereqs.py

# The Envoy/Istio API descriptor set the policy pack decodes EnvoyFilter patches and mesh config
# against: built from the Go modules pinned in policy-pack/descriptors/go.mod, cached outside the
# repository (~/.cache/aimesh/descriptors/<hash of the pins>/), rebuilt only when a pin changes.
DESCRIPTORS := PYTHONPATH=policy-pack $(PY) -m aimesh_policies.descriptors
descriptors: ensure  ## build the Envoy/Istio API descriptor set the pack decodes against (needs Go)
	@$(DESCRIPTORS)

# For test/check/preview/up: build the set when Go is here; without Go, say what that costs and go
# on (the tests that need it skip, the pack reports "cannot verify" instead of passing).
define descriptors_if_go
	@if command -v go >/dev/null 2>&1; then $(DESCRIPTORS) >/dev/null; else \
	  echo "note: Go is not installed, so the Envoy/Istio descriptor set cannot be built:" \
	    "EnvoyFilters and mesh config cannot be verified (see docs/envoy-config.md)" >&2; fi
endef

# Shared by up/preview. The file backend's directory must exist (Pulumi does not create it:
# "unable to open bucket"). The CLI runs a LOCAL policy pack from the virtualenv named in
# PulumiPolicy.yaml (policy-pack/venv) but never creates or fills it, so it is prepared here.
policy-pack/venv/.installed: policy-pack/requirements.txt
	$(PYTHON) -m venv policy-pack/venv
	policy-pack/venv/bin/python -m pip install --quiet --upgrade pip
	policy-pack/venv/bin/python -m pip install --quiet -r policy-pack/requirements.txt
	touch $@

define stack_ready
	$(descriptors_if_go)
	@mkdir -p $(CURDIR)/.pulumi
	pulumi stack select --create $(STACK)
endef

# prereqs first: a missing tool is reported before anything is installed.
# --skip-preview: on a fresh machine the kind cluster does not exist yet, so the provider's
# kubeconfig is unknown during a preview, and the engine refuses to construct Helm v4 Charts
# with an unknown provider ("cannot construct components if the provider is configured with
# unknown values"). Without the preview the update creates the cluster first, then the charts.
up: prereqs ensure policy-pack/venv/.installed  ## kind cluster + Istio + cert-manager + KServe + zero trust + demo models (stack $(STACK))
	$(stack_ready)
	pulumi up --stack $(STACK) --yes --skip-preview --policy-pack policy-pack \
		--policy-pack-config $(POLICY_PACK_CONFIG)

down: prereqs  ## destroy the stack (the kind cluster goes with it)
	pulumi destroy --stack $(STACK) --yes

# On kind, a preview needs the cluster to exist (after a first `make up`), see `up`.
preview: prereqs ensure policy-pack/venv/.installed  ## pulumi preview with the policy pack, as CI runs it
	$(stack_ready)
	pulumi preview --stack $(STACK) --policy-pack policy-pack \
		--policy-pack-config $(POLICY_PACK_CONFIG)

check: ensure  ## offline: evaluate stack $(STACK), send it through the policy pack over gRPC, report
	$(descriptors_if_go)
	$(PY) -m tools.check --stack $(STACK)

test: ensure schemas  ## everything offline: unit, components, programs per stack, schemas, policy pack
	$(descriptors_if_go)
	$(PY) -m pytest -n 2 -q

# The real thing (docs/e2e.md): Go 1.26 builds the pinned toolchain into ~/.cache/aimesh/e2e
# (once; reused while e2e/pins.toml is unchanged), then the scenario runs against a control
# plane on 127.0.0.1. Fails, never skips, when something is broken.
E2E_REPORT ?= build/e2e/report.json
e2e-toolchain: ensure  ## build (or reuse) the pinned Pulumi CLI, provider, control plane and kwok
	$(PY) -m e2e.toolchain

e2e: e2e-toolchain policy-pack/venv/.installed  ## the real Pulumi CLI + provider + API server, end to end
	$(PY) -m e2e.scenario --report $(E2E_REPORT)

lint: ensure  ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/mypy policy-pack/__main__.py
	for program in examples/*/__main__.py; do $(VENV)/bin/mypy "$$program" || exit 1; done

format: ensure  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: ensure  ## regenerate docs/policies.md from the policy pack
	$(PY) -m tools.policy_docs > docs/policies.md

bench: ensure  ## program evaluation and policy-pack throughput figures
	$(PY) benchmarks/program.py
	$(PY) benchmarks/policy_pack.py

clean:  ## remove the virtualenv and caches (not the stack state)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache
