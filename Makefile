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

.PHONY: help ensure lock schemas prereqs descriptors up down preview check audit test e2e e2e-toolchain lint format docs bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# The ONE recipe that builds a virtualenv (here, `make up`, `make preview` and the workflows all
# come through it): emptied, then filled with exactly its lock file. The locks list every
# transitive dependency with its hashes, so pip installs nothing unpinned or unverified
# (docs/dependencies.md). `pulumi install` reads the same requirements.txt files.
define venv_from_lock
	$(PYTHON) -m venv --clear $(1)
	$(1)/bin/python -m pip install --quiet --require-hashes -r $(2)
	touch $(1)/.installed
endef

# .venv: the program (Pulumi.yaml's virtualenv), the pack (tests import it) and the dev tools.
$(VENV)/.installed: requirements-dev.txt
	$(call venv_from_lock,$(VENV),requirements-dev.txt)

# The CLI runs a LOCAL policy pack from the virtualenv named in PulumiPolicy.yaml
# (policy-pack/venv) but never creates or fills it; `make check` runs the pack from it too.
policy-pack/venv/.installed: policy-pack/requirements.txt
	$(call venv_from_lock,policy-pack/venv,policy-pack/requirements.txt)

ensure: $(VENV)/.installed policy-pack/venv/.installed  ## build .venv and policy-pack/venv from the hashed locks

# Re-resolve the locks after editing a requirements*.in (existing pins are kept where they still
# fit; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed versions). The
# dev lock is resolved first; the program and pack locks are constrained to it, so a package
# has one version in all three.
LOCK_FLAGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS)

lock: $(VENV)/.installed  ## re-resolve requirements*.txt (hashed locks) from requirements*.in
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) -c requirements-dev.txt requirements.in -o requirements.txt
	$(UV_COMPILE) -c requirements-dev.txt policy-pack/requirements.in -o policy-pack/requirements.txt

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

# Shared by up/preview (both virtualenvs come from `ensure`). The file backend's directory must
# exist (Pulumi does not create it: "unable to open bucket").
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
# So `check` (the pack's verdict, offline) runs first: a mandatory violation or a config error
# stops here, before a cluster or any resource is created.
up: prereqs ensure check  ## kind cluster + Istio + cert-manager + KServe + zero trust + demo models (stack $(STACK))
	$(stack_ready)
	pulumi up --stack $(STACK) --yes --skip-preview --policy-pack policy-pack \
		--policy-pack-config $(POLICY_PACK_CONFIG)

down: prereqs  ## destroy the stack (the kind cluster goes with it)
	pulumi destroy --stack $(STACK) --yes

# On kind, a preview needs the cluster to exist (after a first `make up`), see `up`.
preview: prereqs ensure  ## pulumi preview with the policy pack, as CI runs it
	$(stack_ready)
	pulumi preview --stack $(STACK) --policy-pack policy-pack \
		--policy-pack-config $(POLICY_PACK_CONFIG)

check: ensure  ## offline: evaluate stack $(STACK), send it through the policy pack over gRPC, report
	$(descriptors_if_go)
	$(PY) -m tools.check --stack $(STACK)

# Exit 1: something needs attention; 2: a check could not run (no CLI or cluster). AUDIT_FLAGS
# e.g. --offline (access matrix and end dates only), --drift program, --kubeconfig FILE.
AUDIT_REPORT ?= audit-report
audit: ensure  ## drift, the pack on what is live, access matrix vs approved, ending audits/exemptions ($(STACK))
	$(descriptors_if_go)
	$(PY) -m tools.audit --stack $(STACK) --report $(AUDIT_REPORT) $(AUDIT_FLAGS)

test: ensure schemas  ## everything offline: unit, components, programs per stack, schemas, policy pack
	$(descriptors_if_go)
	$(PY) -m pytest -n 2 -q

# The real thing (docs/e2e.md): Go 1.26 builds the pinned toolchain into ~/.cache/aimesh/e2e
# (once; reused while e2e/pins.toml is unchanged), then the scenario runs against a control
# plane on 127.0.0.1. Fails, never skips, when something is broken.
E2E_REPORT ?= build/e2e/report.json
e2e-toolchain: ensure  ## build (or reuse) the pinned Pulumi CLI, provider, control plane and kwok
	$(PY) -m e2e.toolchain

e2e: e2e-toolchain schemas  ## the real Pulumi CLI + provider + API server, end to end
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

docs: ensure  ## regenerate docs/policies.md (the pack) and docs/access-matrix.md (graph + tables per stack)
	$(PY) -m tools.policy_docs > docs/policies.md
	$(PY) -m tools.access_matrix --all-stacks --output docs/access-matrix.md

bench: ensure  ## program evaluation, policy-pack and tools.learn throughput figures
	$(PY) benchmarks/program.py
	$(PY) benchmarks/policy_pack.py
	$(PY) benchmarks/learn.py

clean:  ## remove the virtualenvs and caches (not the stack state)
	rm -rf $(VENV) policy-pack/venv .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache
