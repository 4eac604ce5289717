"""Strict conformance checks against the upstream reference data of the pinned versions.

`.cache/upstream` holds the CRDs and chart values of exactly the versions in aimesh/versions.py,
each pinned by URL and sha256 in tools/upstream-files.toml and put there by `make schemas`
(tools/upstream.py: from a mirror such as ../shared/upstream, or the pinned URLs). They are never
committed to the repository. Without them every check here raises UpstreamMissingError naming
the command to run: the tests fail rather than silently skip (tests/conftest.py).

- Custom resources are validated against their CRD's openAPIV3Schema made STRICT: an object
  schema that lists properties gets `additionalProperties: false` (unless it preserves unknown
  fields), because the API server silently prunes unknown fields: a typo would vanish instead
  of failing.
- Core Kubernetes objects go through kubernetes-validate's strict schemas for the pinned
  Kubernetes version.
- Helm values: every key must exist in the chart's own values.yaml (and the chart's
  values.schema.json, where upstream has one, must accept them).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from aimesh.builders.common import deep_merge
from aimesh.versions import KUBERNETES_SCHEMA_VERSION
from tools import upstream as upstream_files


class UpstreamMissingError(RuntimeError):
    """The schema cache is incomplete; the message names the command that fills it."""


@cache
def _cache_problems() -> tuple[str, ...]:
    return tuple(upstream_files.cache_problems())


def require_upstream() -> None:
    """Raise UpstreamMissingError unless every pinned file is in the cache, sha256 intact
    (checked once per process)."""
    problems = _cache_problems()
    if problems:
        raise UpstreamMissingError(upstream_files.missing_message(problems))


def upstream_paths(prefix: str) -> list[Path]:
    """The cached files at `prefix` (one file, or every pinned file below a directory)."""
    require_upstream()
    names = sorted(
        pin.path
        for pin in upstream_files.pinned()
        if pin.path == prefix or pin.path.startswith(prefix.rstrip("/") + "/")
    )
    if not names:
        raise KeyError(f"{prefix} is not pinned in {upstream_files.PINNED_LIST.name}")
    return [upstream_files.CACHE / name for name in names]


def upstream(path: str) -> Path:
    """One pinned file in the cache."""
    (found,) = upstream_paths(path)
    return found


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML cannot read the plain scalar `=` (yaml/pyyaml#89); Go parsers read it as "="."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),
)


def load_yaml_documents(path: Path) -> Iterator[Any]:
    with path.open() as handle:
        yield from (doc for doc in yaml.load_all(handle, Loader=_Loader) if doc)


CRD_SOURCES = (
    "istio/crds.yaml",
    "cert-manager/crds.yaml",
    "kserve/crds",
    "gateway-api/v1.5.1/standard",
    "prometheus-operator/crds",
)


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> strict openAPIV3Schema, for every served version."""
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source in CRD_SOURCES:
        for file in upstream_paths(source):
            for doc in load_yaml_documents(file):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if not version.get("served", True):
                        continue
                    schema = dict(version.get("schema", {}).get("openAPIV3Schema", {}))
                    # Some CRDs (Istio's) leave the type meta out of their root schema.
                    schema["properties"] = {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        **schema.get("properties", {}),
                    }
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    schemas[key] = strict(schema)
    return schemas


def strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema in which unknown fields are errors, as JSON Schema."""
    out = copy.deepcopy(dict(schema))
    _strictify(out)
    return out


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        node["additionalProperties"] = False
    for key, value in list(node.items()):
        if key.startswith("x-kubernetes-"):
            node.pop(key)
        elif key in ("properties", "patternProperties", "definitions"):
            for sub in value.values():
                _strictify(sub)
        elif isinstance(value, dict | list):
            _strictify(value)


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def validate_custom_resource(manifest: Mapping[str, Any]) -> list[str]:
    """Problems of one custom resource against its strict upstream schema ([] when valid)."""
    import jsonschema

    group, version = _split_api_version(str(manifest.get("apiVersion", "")))
    kind = str(manifest.get("kind", ""))
    schema = crd_schemas().get((group, version, kind))
    if schema is None:
        return [f"no upstream CRD serves {group}/{version} {kind}"]
    body = {k: v for k, v in manifest.items() if k != "metadata"}
    problems = [
        f"{kind} {_name(manifest)}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(body)
    ]
    return problems + _metadata_problems(manifest)


def _name(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _metadata_problems(manifest: Mapping[str, Any]) -> list[str]:
    meta = manifest.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        return [f"{manifest.get('kind')}: metadata.name is required"]
    allowed = {"name", "namespace", "labels", "annotations", "generateName", "finalizers"}
    problems = [
        f"{manifest.get('kind')} {_name(manifest)}: metadata.{k} is not expected"
        for k in meta
        if k not in allowed
    ]
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            if not isinstance(value, str):
                problems.append(f"{_name(manifest)}: metadata.{field}[{key}] must be a string")
    return problems


def validate_core(manifest: Mapping[str, Any]) -> list[str]:
    """Problems of a core Kubernetes object against the strict schema of the pinned version."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(manifest), KUBERNETES_SCHEMA_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{manifest.get('kind')} {_name(manifest)}: {exc}"]
    except kubernetes_validate.ValidationError as exc:
        cause = exc.args[0] if exc.args else exc
        path = ".".join(map(str, getattr(cause, "absolute_path", ())))
        message = getattr(cause, "message", str(cause))
        return [f"{manifest.get('kind')} {_name(manifest)}: {path}: {message}"]
    return []


def type_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Values of the wrong JSON type (a string where the schema wants a boolean, a scalar where
    it wants a list), ignoring missing required fields and unknown ones. The API server fails
    to decode such an object, so it never reaches admission (a ValidatingAdmissionPolicy)."""
    import jsonschema

    if is_custom(manifest):
        group, version = _split_api_version(str(manifest.get("apiVersion", "")))
        schema = crd_schemas().get((group, version, str(manifest.get("kind", ""))))
        if schema is None:
            return [f"no upstream CRD serves {manifest.get('apiVersion')} {manifest.get('kind')}"]
        validator: Any = jsonschema.Draft7Validator(schema)
    else:
        validator = _core_validator(str(manifest.get("apiVersion", "")), str(manifest.get("kind")))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(dict(manifest))
        if e.validator == "type"
    ]


def _core_validator(api_version: str, kind: str) -> Any:
    import re

    import jsonschema
    import referencing
    from kubernetes_validate import utils

    version = [
        v
        for v in utils.all_versions()
        if utils.major_minor(v) <= utils.major_minor(KUBERNETES_SCHEMA_VERSION)
    ][-1]
    directory = f"kubernetes-json-schema/v{version}-local"
    name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = utils.schema_contents(f"{directory}/{kind.lower()}-{name}.json", version)
    definitions = utils.schema_contents(f"{directory}/_definitions.json", version)
    registry: Any = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def is_custom(manifest: Mapping[str, Any]) -> bool:
    group, _ = _split_api_version(str(manifest.get("apiVersion", "")))
    return ("." in group and not group.endswith(".k8s.io")) or group.endswith(
        "gateway.networking.k8s.io"
    )


def validate(manifest: Mapping[str, Any]) -> list[str]:
    return validate_custom_resource(manifest) if is_custom(manifest) else validate_core(manifest)


# ---- Helm values -------------------------------------------------------------------------


CHART_VALUES = {
    "cert-manager": "cert-manager/chart/values.yaml",
    "istio-base": "istio/charts/base/values.yaml",
    "istiod": "istio/charts/istiod/values.yaml",
    "istio-gateway": "istio/charts/gateway/values.yaml",
    "kserve-resources": "kserve/chart/values.yaml",
    "kserve-runtime-configs": "kserve/extra-charts/kserve-runtime-configs/values.yaml",
    "kube-prometheus-stack": "kube-prometheus-stack/values.yaml",
    "opentelemetry-collector": "opentelemetry-collector/values.yaml",
    "istio-csr": "istio-csr/values.yaml",
}
CHART_SCHEMAS = {
    "cert-manager": "cert-manager/chart/values.schema.json",
    "istio-gateway": "istio/charts/gateway/values.schema.json",
    "opentelemetry-collector": "opentelemetry-collector/values.schema.json",
    "istio-csr": "istio-csr/values.schema.json",
}


@cache
def chart_defaults(chart: str) -> dict[str, Any]:
    values = _raw_defaults(chart)
    # Istio nests its defaults under this key; users set them at the top level.
    nested = values.get("_internal_defaults_do_not_set")
    return nested if isinstance(nested, dict) else values


# Values subtrees the chart passes through verbatim to a typed upstream API, so the chart's
# values.yaml lists only a few examples of them (the keys there are checked by other means).
OPEN_PATHS: dict[str, frozenset[str]] = {
    # istiod renders meshConfig into the mesh ConfigMap as-is (MeshConfig proto).
    "istiod": frozenset({"meshConfig"}),
    # `labels` is a free-form label map (its default holds one example label); the chart's
    # helpers read labels.app / labels.istio to override the selector labels.
    "istio-gateway": frozenset({"labels"}),
}


def unknown_value_keys(
    values: Any, defaults: Any, path: str = "", open_paths: frozenset[str] = frozenset()
) -> list[str]:
    """Keys set in `values` that the chart's values.yaml does not have. Free-form maps (a
    default of {} or null) and `open_paths` accept any key below them."""
    if path in open_paths:
        return []
    if not isinstance(values, Mapping) or not isinstance(defaults, Mapping) or not defaults:
        return []
    problems: list[str] = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in defaults:
            problems.append(where)
        else:
            problems += unknown_value_keys(value, defaults[key], where, open_paths)
    return problems


def validate_values(chart: str, values: Mapping[str, Any]) -> list[str]:
    """Problems of `values` for `chart`: unknown keys, and the chart's own schema if any."""
    problems = [
        f"{chart}: unknown values key {k}"
        for k in unknown_value_keys(
            values, chart_defaults(chart), open_paths=OPEN_PATHS.get(chart, frozenset())
        )
    ]
    if chart in CHART_SCHEMAS:
        import jsonschema

        schema = json.loads(upstream(CHART_SCHEMAS[chart]).read_text())
        validator_cls = jsonschema.validators.validator_for(schema)
        problems += [
            f"{chart}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator_cls(schema).iter_errors(deep_merge(_raw_defaults(chart), values))
        ]
    return problems


def _raw_defaults(chart: str) -> dict[str, Any]:
    values = yaml.load(upstream(CHART_VALUES[chart]).read_text(), Loader=_Loader)  # noqa: S506
    return values if isinstance(values, dict) else {}
