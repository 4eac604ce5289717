"""Mesh PKI: who signs workload certificates, what they chain to and how long they live.

A workload's certificate IS its identity (every ALLOW rule names a SPIFFE principal), so whoever
can sign one can impersonate anyone. When cert-manager's istio-csr is the mesh CA, every other
signer must be off and every proxy must ask istio-csr: istiod's built-in CA
(`ENABLE_CA_SERVER`, in chart values, an IstioOperator or the rendered Deployment, including
`envVarFrom` and the values Go cannot parse as a boolean, which fall back to "on"), a proxy sent
elsewhere (`global.caAddress`, `CA_ADDR` in mesh or per-pod proxy config, ProxyConfig, a
hand-injected sidecar), extra trust anchors (`caCertificates`, `caCertificatesPem`, another
root ConfigMap, ClusterTrustBundles), istiod forwarding CSRs to another CA (`meshConfig.ca`),
node accounts allowed to request other identities, or an issuer chosen at runtime by a
ConfigMap. Production meshes must not chain to a root minted in the cluster by a self-signed
issuer (istiod's own root, or a cert-manager selfSigned issuer anywhere up the issuer chain),
unless the stack is exempted with a reason. The CA must cap workload certificate lifetime.

Go's boolean parsing decides what istiod reads: only 0/f/F/false/FALSE/False turn the CA
server off; anything else it cannot parse leaves the default, on.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from aimesh_policies.accessors import (
    UNKNOWN,
    as_bool,
    as_list,
    as_map,
    as_str,
    get,
    str_list,
)
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    show,
    unknown_finding,
)
from aimesh_policies.k8s_object import HELM_VALUES, MESH_CONFIG, K8sObject
from aimesh_policies.objects import ISTIOD_CHARTS
from aimesh_policies.pods import POD_TEMPLATE_PATHS, pods

CERT_MANAGER: Final = "cert-manager.io"
ISSUER: Final = (CERT_MANAGER, "Issuer")
CLUSTER_ISSUER: Final = (CERT_MANAGER, "ClusterIssuer")
CERTIFICATE: Final = (CERT_MANAGER, "Certificate")
SECRET: Final = ("", "Secret")
DEPLOYMENT: Final = ("apps", "Deployment")
ISTIO_OPERATOR: Final = ("install.istio.io", "IstioOperator")
PROXY_CONFIG: Final = ("networking.istio.io", "ProxyConfig")
WORKLOADS: Final = frozenset({*POD_TEMPLATE_PATHS, ("", "Pod")})

ISTIO_CSR_CHARTS: Final = frozenset({"cert-manager-istio-csr", "istio-csr"})
ISTIO_CSR_IMAGE: Final = "cert-manager-istio-csr"
ISTIO_CSR_DEFAULT_HOST: Final = "cert-manager-istio-csr.cert-manager.svc"
ISTIO_CSR_DEFAULT_PORT: Final = 443
ISTIO_CSR_DEFAULT_ISSUER: Final = {"name": "istio-ca", "kind": "Issuer", "group": CERT_MANAGER}
ISTIOD_NAMESPACE: Final = "istio-system"
DEFAULT_ROOT_CONFIGMAP: Final = "istio-ca-root-cert"
PROXY_CONFIG_ANNOTATION: Final = "proxy.istio.io/config"
# Values strconv.ParseBool reads as false (istiod's env.Register for booleans).
_GO_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})
# Istio's defaults when the variable is unset: istiod's CA server is on, its maximum workload
# certificate lifetime is 90 days; istio-csr's maximum is one hour.
ISTIOD_MAX_TTL_DEFAULT: Final = "2160h"
ISTIO_CSR_MAX_DEFAULT: Final = "1h"
_MAX_CHAIN: Final = 8  # issuer -> certificate -> issuer ... hops followed before giving up

PKI_KINDS: Final = frozenset(
    {HELM_VALUES, MESH_CONFIG, DEPLOYMENT, ISTIO_OPERATOR, PROXY_CONFIG, *WORKLOADS}
)


# --- small readers -------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS: Final = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def go_duration(value: Any) -> float | None:
    """Seconds of a Go duration string ("1h", "90m", "1h30m0s"); None if it is not one."""
    text = as_str(value)
    if not text:
        return None
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def go_false(value: Any) -> bool:
    """Whether istiod reads `value` (an env value as the chart renders it) as false."""
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    return isinstance(value, str) and value in _GO_FALSE


def _stack_of(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<type>::<name>
    head = urn.split("::", 1)[0]
    return head.removeprefix("urn:pulumi:") if head.startswith("urn:pulumi:") else ""


def _parse_yaml(text: Any) -> Mapping[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        loaded = yaml.safe_load(text)
    except Exception:
        return None
    return loaded if isinstance(loaded, Mapping) else None


# --- where istiod is configured ------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One value of istiod's environment: where it is written and what it is."""

    path: str  # field path inside `obj`, as messages show it
    value: Any  # UNKNOWN when unknown; None when unset
    indirect: bool = False  # comes from a ConfigMap/Secret (envVarFrom, valueFrom): unverifiable


@dataclass(frozen=True)
class Istiod:
    """One place istiod's configuration is written: chart values, an IstioOperator or the
    Deployment itself. `env(name)` is the value in force there (last writer wins)."""

    obj: K8sObject
    values_path: str  # where Helm-style values sit ("values", "spec.values"; "" for a Deployment)
    settings: Mapping[str, Setting]
    # Unknown fields that could set or override any variable (an unknown env map, an
    # envVarFrom entry or env entry whose name is unknown, an unknown container name...).
    unknowns: tuple[str, ...] = ()
    env_at: str = ""  # a Deployment's discovery container env (where a missing variable goes)

    def env(self, name: str) -> Setting | None:
        return self.settings.get(name)

    def value(self, path: str) -> Any:
        if not self.values_path:
            return None
        return self.obj.get(f"{self.values_path}.{path}")

    def field(self, path: str) -> str:
        """`path` under the values; for a Deployment, the discovery container's env."""
        return f"{self.values_path}.{path}" if self.values_path else self.env_at

    def unknown_for(self, name: str) -> list[str]:
        """What keeps variable `name` from being known: structural unknowns, or its value."""
        setting = self.env(name)
        found = list(self.unknowns)
        if setting is not None and setting.value is UNKNOWN and not setting.indirect:
            found.append(setting.path)
        return found


def _values_env(obj: K8sObject, base: str) -> tuple[dict[str, Setting], list[str]]:
    """istiod's env from Helm-style values at `base`: `env`, then `pilot.env` (the chart copies
    `pilot.*` over the top level last), then `envVarFrom` (rendered after both)."""
    found: dict[str, Setting] = {}
    unknowns: list[str] = []
    for prefix in ("env", "pilot.env"):
        env = obj.get(f"{base}.{prefix}")
        if env is UNKNOWN:
            unknowns.append(_first_unknown(obj, f"{base}.{prefix}"))
            continue
        for key, value in as_map(env).items():
            found[str(key)] = Setting(f"{base}.{prefix}.{key}", value)
    for prefix in ("envVarFrom", "pilot.envVarFrom"):
        entries = obj.get(f"{base}.{prefix}")
        if entries is UNKNOWN:
            unknowns.append(_first_unknown(obj, f"{base}.{prefix}"))
            continue
        for i, entry in enumerate(as_list(entries)):
            name = get(entry, "name")
            if name is UNKNOWN:
                unknowns.append(f"{base}.{prefix}[{i}]")
            elif isinstance(name, str) and name:
                found[name] = Setting(f"{base}.{prefix}[{i}]", UNKNOWN, indirect=True)
    return found, list(dict.fromkeys(unknowns))


def _first_unknown(obj: K8sObject, path: str) -> str:
    """The outermost unknown field on the way to `path` (what a message should name)."""
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if obj.get(prefix) is UNKNOWN:
            return prefix
    return path


def _container_env(container: Mapping[str, Any], at: str) -> tuple[dict[str, Setting], list[str]]:
    """A container's env: the last entry of a name wins; `valueFrom` is unverifiable; an entry
    whose name is unknown (or an unknown list) could be any variable."""
    env = container.get("env")
    if env is UNKNOWN:
        return {}, [f"{at}.env"]
    found: dict[str, Setting] = {}
    unknowns: list[str] = []
    for i, entry in enumerate(as_list(env)):
        if entry is UNKNOWN:
            unknowns.append(f"{at}.env[{i}]")
            continue
        if not isinstance(entry, Mapping):
            continue
        name = entry.get("name")
        if name is UNKNOWN:
            unknowns.append(f"{at}.env[{i}].name")
            continue
        if not isinstance(name, str) or not name:
            continue
        if entry.get("valueFrom") is not None:
            found[name] = Setting(f"{at}.env[{i}]", UNKNOWN, indirect=True)
        else:
            found[name] = Setting(f"{at}.env[{i}].value", entry.get("value"))
    return found, unknowns


def _name_unknown(obj: K8sObject) -> bool:
    meta = obj.body.get("metadata")
    return meta is UNKNOWN or get(meta, "name") is UNKNOWN


def _image(container: Mapping[str, Any]) -> str | None:
    """The container's image; None when it is unknown."""
    image = container.get("image")
    return None if image is UNKNOWN else (as_str(image) or "")


def _is_discovery(obj: K8sObject, container: Mapping[str, Any]) -> bool:
    """istiod's container: named `discovery` in a Deployment named istiod[-rev]; with a name
    unknown, an image that is (or may be) Istio's pilot decides."""
    name, image = container.get("name"), _image(container)
    pilot = image is None or "pilot" in image
    istiod_named = obj.name == "istiod" or obj.name.startswith("istiod-")
    if name is UNKNOWN:
        return istiod_named or (_name_unknown(obj) and pilot)
    if name != "discovery":
        return False
    return istiod_named or (_name_unknown(obj) and pilot)


def istiod_sources(objs: Iterable[K8sObject]) -> Iterator[Istiod]:
    """Every place of the stack that configures istiod."""
    for obj in objs:
        if obj.group_kind == HELM_VALUES and get(obj.body, "chart") in ISTIOD_CHARTS:
            settings, unknowns = _values_env(obj, "values")
            yield Istiod(obj, "values", settings, tuple(unknowns))
        elif obj.group_kind == ISTIO_OPERATOR:
            settings, unknowns = _values_env(obj, "spec.values")
            k8s_env = obj.get("spec.components.pilot.k8s.env")
            if k8s_env is UNKNOWN:
                unknowns.append(_first_unknown(obj, "spec.components.pilot.k8s.env"))
                extra: dict[str, Setting] = {}
            else:
                extra, more = _container_env({"env": k8s_env}, "spec.components.pilot.k8s")
                unknowns += more
            yield Istiod(obj, "spec.values", {**settings, **extra}, tuple(unknowns))
        elif obj.group_kind == DEPLOYMENT:
            for view in pods(obj):
                for at, container in view.containers:
                    if not _is_discovery(obj, container):
                        continue
                    settings, unknowns = _container_env(container, at)
                    if container.get("name") is UNKNOWN:
                        unknowns.insert(0, f"{at}.name")
                    elif _name_unknown(obj):
                        unknowns.insert(0, "metadata.name")
                    yield Istiod(obj, "", settings, tuple(unknowns), env_at=f"{at}.env")


def ca_server_on(source: Istiod) -> bool | None:
    """Whether istiod's CA server runs (None: cannot tell)."""
    if source.unknown_for("ENABLE_CA_SERVER"):
        return None
    setting = source.env("ENABLE_CA_SERVER")
    if setting is None:
        return True
    if setting.indirect:
        return None
    return not go_false(setting.value)


# --- istio-csr -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IstioCsr:
    """istio-csr as the stack installs it: its chart values or its Deployment's arguments."""

    obj: K8sObject
    hosts: frozenset[str] = frozenset()  # DNS names of its serving certificate (agents dial)
    port: int | None = None  # the Service port (None: any, when only the Deployment is seen)
    issuer: Mapping[str, Any] = field(default_factory=dict)  # name, kind, group
    issuer_path: str = ""
    namespace: Any = ISTIOD_NAMESPACE  # where its CertificateRequests (and a namespaced Issuer) are
    runtime_issuer: str | None = None  # a ConfigMap that may replace the issuer at runtime
    runtime_path: str = ""
    node_accounts: Any = None  # service accounts allowed to request other identities
    node_path: str = ""
    lifetime: Any = None  # the workload certificate lifetime cap (None: unset, the default)
    lifetime_path: str = ""
    # Unknown fields any of the above may hide behind (each rule reports them: cannot verify).
    unknowns: tuple[str, ...] = ()

    def serves(self, address: str) -> bool:
        host, _, port = address.rpartition(":")
        if not host:
            return False
        return host in self.hosts and (self.port is None or port == str(self.port))

    @property
    def address(self) -> str:
        host = sorted(self.hosts)[0] if self.hosts else ISTIO_CSR_DEFAULT_HOST
        return f"{host}:{self.port or ISTIO_CSR_DEFAULT_PORT}"


# What of istio-csr's values the rules read (unknown anywhere in them: cannot verify).
_CSR_VALUES: Final = (
    "values.service.port",
    "values.app.certmanager",
    "values.app.runtimeConfiguration",
    "values.app.runtimeIssuanceConfigMap",
    "values.app.tls.certificateDNSNames",
    "values.app.server.maxCertificateDuration",
    "values.app.server.caTrustedNodeAccounts",
)


def _from_values(obj: K8sObject) -> IstioCsr:
    unknowns = tuple(dict.fromkeys(u for path in _CSR_VALUES for u in obj.unknown(path)))
    values = as_map(obj.get("values"))
    app = as_map(get(values, "app"))
    names = get(app, "tls.certificateDNSNames")
    port = get(values, "service.port")
    issuer_path = "values.app.certmanager.issuer"
    issuer = {**ISTIO_CSR_DEFAULT_ISSUER, **as_map(get(app, "certmanager.issuer"))}
    runtime_path = "values.app.runtimeConfiguration.name"
    runtime = as_str(get(app, "runtimeConfiguration.name"))
    if not runtime and as_str(app.get("runtimeIssuanceConfigMap")):
        runtime = as_str(app.get("runtimeIssuanceConfigMap"))
        runtime_path = "values.app.runtimeIssuanceConfigMap"
    if as_bool(get(app, "runtimeConfiguration.create")) is True:
        # The chart creates the ConfigMap from these values; istio-csr follows it rather than
        # the default issuer, and whoever edits it later picks the mesh CA.
        issuer = {**ISTIO_CSR_DEFAULT_ISSUER, **as_map(get(app, "runtimeConfiguration.issuer"))}
        issuer_path = "values.app.runtimeConfiguration.issuer"
        runtime, runtime_path = runtime or ISTIO_CSR_IMAGE, "values.app.runtimeConfiguration"
    namespace = get(app, "certmanager.namespace")
    return IstioCsr(
        obj,
        hosts=frozenset(str_list(names) if names is not None else [ISTIO_CSR_DEFAULT_HOST]),
        port=int(port) if isinstance(port, int | float) else ISTIO_CSR_DEFAULT_PORT,
        issuer=issuer,
        issuer_path=issuer_path,
        namespace=ISTIOD_NAMESPACE if namespace is None else namespace,
        runtime_issuer=runtime,
        runtime_path=runtime_path,
        node_accounts=get(app, "server.caTrustedNodeAccounts"),
        node_path="values.app.server.caTrustedNodeAccounts",
        lifetime=get(app, "server.maxCertificateDuration"),
        lifetime_path="values.app.server.maxCertificateDuration",
        unknowns=unknowns,
    )


def _args(container: Mapping[str, Any]) -> dict[str, str]:
    """`--flag=value` arguments (the last one of a flag wins); repeated DNS names joined."""
    found: dict[str, str] = {}
    for arg in [*str_list(container.get("command")), *str_list(container.get("args"))]:
        if arg.startswith("--") and "=" in arg:
            flag, _, value = arg[2:].partition("=")
            if flag == "serving-certificate-dns-names" and flag in found:
                value = f"{found[flag]},{value}"
            found[flag] = value
    return found


def _is_istio_csr(obj: K8sObject, container: Mapping[str, Any]) -> bool:
    image = _image(container)
    if image is not None:
        return ISTIO_CSR_IMAGE in image
    # Image unknown until apply: the workload's own name or app label still says what it is.
    return "istio-csr" in obj.name or "istio-csr" in obj.labels.get("app", "")


def _from_deployment(obj: K8sObject) -> Iterator[IstioCsr]:
    for view in pods(obj):
        for at, container in view.containers:
            if not _is_istio_csr(obj, container):
                continue
            unknowns = [f"{at}.image"] if container.get("image") is UNKNOWN else []
            for key in ("command", "args"):
                value = container.get(key)
                if value is UNKNOWN:
                    unknowns.append(f"{at}.{key}")
                else:
                    unknowns += [
                        f"{at}.{key}[{i}]" for i, v in enumerate(as_list(value)) if v is UNKNOWN
                    ]
            args = _args(container)
            names = [n for n in args.get("serving-certificate-dns-names", "").split(",") if n]
            yield IstioCsr(
                obj,
                hosts=frozenset(names) or frozenset({ISTIO_CSR_DEFAULT_HOST}),
                issuer={
                    "name": args.get("issuer-name", ISTIO_CSR_DEFAULT_ISSUER["name"]),
                    "kind": args.get("issuer-kind", ISTIO_CSR_DEFAULT_ISSUER["kind"]),
                    "group": args.get("issuer-group", ISTIO_CSR_DEFAULT_ISSUER["group"]),
                },
                issuer_path=f"{at}.args",
                namespace=args.get("certificate-namespace", ISTIOD_NAMESPACE),
                runtime_issuer=args.get("runtime-issuance-config-map-name") or None,
                runtime_path=f"{at}.args",
                node_accounts=args.get("ca-trusted-node-accounts"),
                node_path=f"{at}.args",
                lifetime=args.get("max-client-certificate-duration"),
                lifetime_path=f"{at}.args",
                unknowns=tuple(unknowns),
            )


def _csr_of(obj: K8sObject) -> list[IstioCsr]:
    if obj.group_kind == HELM_VALUES:
        return [_from_values(obj)] if get(obj.body, "chart") in ISTIO_CSR_CHARTS else []
    if obj.group_kind in WORKLOADS:
        return list(_from_deployment(obj))
    return []


def istio_csrs(objs: Iterable[K8sObject]) -> list[IstioCsr]:
    """istio-csr in the stack: its chart values, or a workload running its image."""
    return [csr for obj in objs for csr in _csr_of(obj)]


def _csr_unknowns(csrs: Sequence[IstioCsr]) -> Iterator[Finding]:
    for csr in csrs:
        for where in csr.unknowns:
            yield unknown_finding(csr.obj, where)


# --- 1. istiod's CA off --------------------------------------------------------------------------


def _istiod_ca_off(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    csrs = istio_csrs(objs)
    if not csrs:
        return
    who = csrs[0].obj.ref
    for source in istiod_sources(objs):
        obj = source.obj
        for where in source.unknown_for("ENABLE_CA_SERVER"):
            yield unknown_finding(obj, where)
        setting = source.env("ENABLE_CA_SERVER")
        if setting is None and not source.unknowns:
            yield finding(
                obj,
                source.field("env.ENABLE_CA_SERVER"),
                f"ENABLE_CA_SERVER is not set, so istiod runs its own CA next to istio-csr "
                f"({who}): two signers, and istiod's self-signed root is trusted by nobody the "
                "mesh CA issues for",
                'set ENABLE_CA_SERVER: "false" in istiod\'s env',
            )
        elif setting is not None and setting.indirect:
            yield finding(
                obj,
                setting.path,
                "ENABLE_CA_SERVER is read from a ConfigMap or Secret: whoever can edit that "
                "object can turn istiod's CA back on, unseen by this stack",
                'set ENABLE_CA_SERVER: "false" as a literal value',
            )
        elif setting is not None and setting.value is not UNKNOWN and not go_false(setting.value):
            yield finding(
                obj,
                setting.path,
                f"is {show(setting.value)!r}: istiod's CA server stays on (Go reads only "
                "0/f/F/false/FALSE/False as false; anything else falls back to on) next to "
                f"istio-csr ({who})",
                'set it to "false"',
            )
        bundle = source.env("ENABLE_CLUSTER_TRUST_BUNDLE_API")
        if bundle is not None and bundle.value is UNKNOWN and not bundle.indirect:
            yield unknown_finding(obj, bundle.path)
        elif bundle is not None and (bundle.indirect or not go_false(bundle.value)):
            yield finding(
                obj,
                bundle.path,
                "proxies would take their trust anchors from a ClusterTrustBundle, which "
                "istio-csr does not write: workloads would trust roots outside the mesh CA",
                "remove ENABLE_CLUSTER_TRUST_BUNDLE_API",
            )


# --- 2. every proxy asks istio-csr and trusts only its roots -------------------------------------


def _ca_address_findings(
    source: Istiod, csrs: Sequence[IstioCsr], wanted: str
) -> Iterator[Finding]:
    if not source.values_path:
        return
    obj = source.obj
    for where in obj.unknown(source.field("global.caAddress")):
        yield unknown_finding(obj, where)
    address = source.value("global.caAddress")
    if address is UNKNOWN:
        pass
    elif not isinstance(address, str) or not address:
        yield finding(
            obj,
            source.field("global.caAddress"),
            "is not set: sidecars and gateways send their certificate requests to istiod, "
            "not to istio-csr",
            f"set it to {wanted}",
        )
    elif not any(c.serves(address) for c in csrs):
        yield finding(
            obj,
            source.field("global.caAddress"),
            f"{address!r} is not istio-csr: every sidecar would get its identity from that address",
            f"set it to {wanted}",
        )
    for key, why in (
        ("global.caName", "selects another certificate provider for every proxy"),
        (
            "global.trustBundleName",
            "makes proxies read their roots from a ConfigMap istio-csr does not write",
        ),
    ):
        value = source.value(key)
        if value is UNKNOWN:
            if source.value("global") is not UNKNOWN:  # reported above already
                yield unknown_finding(obj, source.field(key))
        elif isinstance(value, str) and value and value != DEFAULT_ROOT_CONFIGMAP:
            yield finding(obj, source.field(key), f"is {value!r}: {why}", "remove it")


def _proxy_config_findings(
    obj: K8sObject, path: str, config: Mapping[str, Any], csrs: Sequence[IstioCsr], wanted: str
) -> Iterator[Finding]:
    """A ProxyConfig (mesh `defaultConfig` or a pod's annotation) that redirects or widens."""
    metadata = config.get("proxyMetadata")
    address = get(config, "proxyMetadata.CA_ADDR")
    if metadata is UNKNOWN:
        yield unknown_finding(obj, obj.field(f"{path}.proxyMetadata"))
    elif address is UNKNOWN:
        yield unknown_finding(obj, obj.field(f"{path}.proxyMetadata.CA_ADDR"))
    elif isinstance(address, str) and not any(c.serves(address) for c in csrs):
        yield finding(
            obj,
            f"{path}.proxyMetadata.CA_ADDR",
            f"sends proxies to {address!r} for their certificates instead of istio-csr",
            f"remove it (or set it to {wanted})",
        )
    pem = config.get("caCertificatesPem")
    if pem is UNKNOWN:
        yield unknown_finding(obj, obj.field(f"{path}.caCertificatesPem"))
    elif as_list(pem):
        yield finding(
            obj,
            f"{path}.caCertificatesPem",
            "adds trust anchors next to the mesh CA's roots: certificates from those CAs "
            "would be accepted as mesh identities",
            "remove it; trusted roots belong in istio-csr's trust bundle",
        )


def _mesh_config_findings(
    obj: K8sObject, csrs: Sequence[IstioCsr], wanted: str
) -> Iterator[Finding]:
    if obj.whole_unknown:
        yield unknown_finding(obj, obj.field(""))
        return
    for where in obj.unknown("ca") + obj.unknown("caCertificates"):
        yield unknown_finding(obj, where)
    if obj.get("ca") not in (None, UNKNOWN) and obj.get("ca"):
        yield finding(
            obj, "ca", "istiod would forward workload CSRs to another CA", "remove meshConfig.ca"
        )
    anchors = obj.get("caCertificates")
    if anchors is not UNKNOWN and as_list(anchors):
        yield finding(
            obj,
            "caCertificates",
            "adds trust anchors next to the mesh CA's roots: their certificates would be "
            "accepted as mesh identities",
            "remove it; trusted roots belong in istio-csr's trust bundle",
        )
    default = obj.get("defaultConfig")
    if default is UNKNOWN:
        yield unknown_finding(obj, obj.field("defaultConfig"))
    else:
        yield from _proxy_config_findings(obj, "defaultConfig", as_map(default), csrs, wanted)


def _workloads_use_istio_csr(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    csrs = istio_csrs(objs)
    if not csrs:
        return
    wanted = csrs[0].address
    yield from _csr_unknowns(csrs)
    for csr in csrs:
        if csr.runtime_issuer:
            yield finding(
                csr.obj,
                csr.runtime_path,
                f"istio-csr takes its issuer from ConfigMap {csr.runtime_issuer!r} at runtime: "
                "whoever can edit it picks the mesh CA, outside this stack",
                "use app.certmanager.issuer and leave app.runtimeConfiguration unset",
            )
        accounts = csr.node_accounts
        if accounts is not UNKNOWN and (
            (isinstance(accounts, str) and accounts.strip()) or str_list(accounts)
        ):
            yield finding(
                csr.obj,
                csr.node_path,
                f"{show(accounts)}: these service accounts may request certificates for other "
                "identities (node authentication, meant for ztunnel in ambient mode)",
                "remove it unless the mesh runs ambient (then exempt this workload)",
            )
    for source in istiod_sources(objs):
        yield from _ca_address_findings(source, csrs, wanted)
    for obj in objs:
        if obj.group_kind == MESH_CONFIG:
            yield from _mesh_config_findings(obj, csrs, wanted)
        elif obj.group_kind == PROXY_CONFIG:
            for where in obj.unknown("spec.environmentVariables"):
                yield unknown_finding(obj, where)
            address = get(obj.spec, "environmentVariables.CA_ADDR")
            if isinstance(address, str) and not any(c.serves(address) for c in csrs):
                yield finding(
                    obj,
                    "spec.environmentVariables.CA_ADDR",
                    f"sends the selected proxies to {address!r} for their certificates",
                    "remove CA_ADDR",
                )
        elif obj.group_kind in WORKLOADS:
            yield from _pod_findings(obj, csrs, wanted)


def _annotation_unknowns(obj: K8sObject, meta_path: str) -> list[str]:
    """Unknowns that may hide a pod's proxy config annotation (the path's key has dots)."""
    owner = obj.get(meta_path)
    if owner is UNKNOWN:
        return [meta_path]
    annotations = get(owner, "annotations")
    if annotations is UNKNOWN:
        return [f"{meta_path}.annotations"]
    if as_map(annotations).get(PROXY_CONFIG_ANNOTATION) is UNKNOWN:
        return [f"{meta_path}.annotations.{PROXY_CONFIG_ANNOTATION}"]
    return []


def _pod_findings(obj: K8sObject, csrs: Sequence[IstioCsr], wanted: str) -> Iterator[Finding]:
    for view in pods(obj):
        for where in _annotation_unknowns(obj, view.meta_path):
            yield unknown_finding(obj, where)
        raw = view.annotations.get(PROXY_CONFIG_ANNOTATION)
        path = f"{view.meta_path}.annotations.{PROXY_CONFIG_ANNOTATION}"
        if raw is not None:
            parsed = _parse_yaml(raw)
            if parsed is None:
                yield finding(
                    obj,
                    path,
                    "is not a YAML mapping: istiod rejects the pod's proxy config",
                    "fix or remove the annotation",
                )
            else:
                yield from _proxy_config_findings(obj, path, parsed, csrs, wanted)
        for at, container in view.containers:
            name = container.get("name")
            if name is UNKNOWN:
                image = _image(container)
                if image is None or "proxyv2" in image:
                    yield unknown_finding(obj, f"{at}.name")
                continue
            if name != "istio-proxy":
                continue
            env, unknowns = _container_env(container, at)
            for where in unknowns:
                yield unknown_finding(obj, where)
            setting = env.get("CA_ADDR")
            if setting is None:
                continue
            if setting.value is UNKNOWN and not setting.indirect:
                yield unknown_finding(obj, setting.path)
            elif setting.indirect or not any(c.serves(str(setting.value)) for c in csrs):
                yield finding(
                    obj,
                    setting.path,
                    "this sidecar asks another CA (or one read from a ConfigMap/Secret) for "
                    "its certificate",
                    f"set CA_ADDR to {wanted} or let istiod inject the sidecar",
                )


# --- 3. no self-signed mesh root in production ---------------------------------------------------


def _exemption(stack: str, ctx: Context) -> tuple[bool, str]:
    """(exempt, why) for `stack` from `exemptStacks` (glob -> reason; an empty reason does not
    exempt)."""
    for pattern, reason in as_map(ctx.raw.get("exemptStacks")).items():
        if fnmatch.fnmatchcase(stack, str(pattern)):
            text = as_str(reason) or ""
            if text.strip():
                return True, text
            return False, f"exemptStacks[{pattern!r}] gives no reason, so it does not count"
    return False, ""


@dataclass(frozen=True)
class Verdict:
    kind: str  # "self-signed" | "external" | "unknown"
    path: str = ""  # for "self-signed": the chain that leads there; for "unknown": the field
    obj: K8sObject | None = None


def _identity_unknown(obj: K8sObject) -> str | None:
    """The metadata field that hides which object this is, if any."""
    meta = obj.body.get("metadata")
    if meta is UNKNOWN:
        return "metadata"
    for key in ("name", "namespace"):
        if get(meta, key) is UNKNOWN:
            return f"metadata.{key}"
    return None


def _find(
    objs: Sequence[K8sObject], group_kind: tuple[str, str], name: str, namespace: str | None
) -> K8sObject | Verdict | None:
    """The object of `group_kind` named `name` (in `namespace`); a Verdict "unknown" when an
    object of that kind whose name or namespace is unknown could be it."""
    for obj in objs:
        if obj.group_kind != group_kind:
            continue
        hidden = _identity_unknown(obj)
        if hidden is not None:
            return Verdict("unknown", hidden, obj)
        if obj.name == name and (namespace is None or obj.namespace == namespace):
            return obj
    return None


def _issuer_root(
    objs: Sequence[K8sObject],
    ref: Any,
    namespace: Any,
    ctx: Context,
    seen: tuple[str, ...] = (),
) -> Verdict:
    """Follow an issuerRef up to what it chains to, through objects of this stack."""
    if ref is UNKNOWN or namespace is UNKNOWN:
        return Verdict("unknown", "issuerRef")
    name, kind, group = (get(ref, key) for key in ("name", "kind", "group"))
    if UNKNOWN in (name, kind, group):
        return Verdict("unknown", "issuerRef")
    if group not in (None, "", CERT_MANAGER):
        return Verdict("external")  # an external issuer (Vault, AWS PCA, ...) signs
    kind = as_str(kind) or "Issuer"
    if kind not in ("Issuer", "ClusterIssuer") or not isinstance(name, str):
        return Verdict("external")
    cluster = kind == "ClusterIssuer"
    step = f"{kind} {name}"
    chain = (*seen, step)
    found = _find(
        objs, CLUSTER_ISSUER if cluster else ISSUER, name, None if cluster else as_str(namespace)
    )
    if isinstance(found, Verdict) or found is None or len(chain) > _MAX_CHAIN:
        # Not in this stack: the platform team's issuer, its root theirs.
        return found if isinstance(found, Verdict) else Verdict("external")
    issuer = found
    hidden = issuer.unknown("spec")
    if hidden:
        return Verdict("unknown", hidden[0], issuer)
    spec = issuer.spec
    if "selfSigned" in spec:
        return Verdict("self-signed", " -> ".join(chain), issuer)
    secret = get(spec, "ca.secretName")
    if not isinstance(secret, str):
        return Verdict("external")
    secret_ns = (
        as_str(ctx.raw.get("clusterResourceNamespace")) or "cert-manager"
        if cluster
        else issuer.namespace
    )
    for cert in objs:
        if cert.group_kind != CERTIFICATE:
            continue
        hidden_at = _identity_unknown(cert) or next(
            iter(cert.unknown("spec.secretName") + cert.unknown("spec.issuerRef")), None
        )
        if hidden_at is not None:
            return Verdict("unknown", hidden_at, cert)
        if cert.namespace != secret_ns or cert.get("spec.secretName") != secret:
            continue
        return _issuer_root(
            objs,
            cert.get("spec.issuerRef"),
            cert.namespace,
            ctx,
            (*chain, f"Certificate {cert.namespace}/{cert.name}"),
        )
    return Verdict("external")  # a CA Secret brought in from outside: your PKI's


def _stack_name(objs: Sequence[K8sObject]) -> str:
    return next((s for s in (_stack_of(o.urn) for o in objs) if s), "")


def _self_signed_root(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    stack = _stack_name(objs)
    exempt, why = _exemption(stack, ctx)
    if exempt:
        return
    note = f" ({why})" if why else ""
    named = stack or "<unnamed>"
    csrs = istio_csrs(objs)
    yield from _csr_unknowns(csrs)
    for csr in csrs:
        verdict = _issuer_root(objs, csr.issuer, csr.namespace, ctx)
        if verdict.kind == "unknown":
            yield unknown_finding(verdict.obj or csr.obj, verdict.path or csr.issuer_path)
        elif verdict.kind == "self-signed":
            yield finding(
                csr.obj,
                csr.issuer_path,
                f"workload certificates chain to a root minted in the cluster by a self-signed "
                f"issuer ({verdict.path}) in stack {named}{note}: its key lives in a Secret, "
                "nobody outside the cluster vouches for it, and it cannot be rotated without an "
                "outage",
                "sign with your PKI (an issuer you run, or a CA Secret holding an intermediate "
                "of your root) and trust its root explicitly (app.tls.rootCAFile), or exempt "
                "this stack with a reason (exemptStacks)",
            )
    if csrs:
        return
    on = [s for s in istiod_sources(objs) if ca_server_on(s) is not False]
    if not on:
        return
    plugged: list[K8sObject] = []
    for obj in objs:
        if obj.group_kind not in (SECRET, CERTIFICATE):
            continue
        hidden = _identity_unknown(obj) or (
            "spec.secretName" if obj.get("spec.secretName") is UNKNOWN else None
        )
        if hidden is not None:
            yield unknown_finding(obj, hidden)  # could be istiod's plugged-in CA
        elif (
            obj.name == "cacerts"
            if obj.group_kind == SECRET
            else (obj.get("spec.secretName") == "cacerts")
        ):
            plugged.append(obj)
    for cert in (o for o in plugged if o.group_kind == CERTIFICATE):
        verdict = _issuer_root(objs, cert.get("spec.issuerRef"), cert.namespace, ctx)
        if verdict.kind == "self-signed":
            yield finding(
                cert,
                "spec.issuerRef",
                f"istiod's plugged-in CA (cacerts) chains to a self-signed root ({verdict.path}) "
                f"in stack {named}{note}",
                "issue cacerts from your PKI, or exempt this stack with a reason (exemptStacks)",
            )
        elif verdict.kind == "unknown":
            yield unknown_finding(verdict.obj or cert, verdict.path)
    if plugged:
        return
    for source in on:
        unknowns = source.unknown_for("ENABLE_CA_SERVER")
        setting = source.env("ENABLE_CA_SERVER")
        if unknowns or (setting is not None and setting.indirect):
            for where in unknowns or [setting.path if setting else source.env_at]:
                yield unknown_finding(source.obj, where)
            continue
        yield finding(
            source.obj,
            source.field("env.ENABLE_CA_SERVER"),
            f"istiod signs workload certificates with its own self-signed root in stack "
            f"{named}{note}, and no plugged-in CA (Secret istio-system/cacerts) is part of the "
            "stack",
            "make cert-manager the mesh CA with your PKI (aimesh: meshCa cert-manager, "
            "meshCaIssuer existing), plug your CA in as cacerts, or exempt this stack with a "
            "reason (exemptStacks)",
        )


# --- 4. workload certificate lifetime ------------------------------------------------------------


def _bounds(ctx: Context) -> tuple[float, float, str, str]:
    low_text = as_str(ctx.raw.get("minWorkloadCertLifetime")) or "10m"
    high_text = as_str(ctx.raw.get("maxWorkloadCertLifetime")) or "24h"
    return go_duration(low_text) or 600.0, go_duration(high_text) or 86400.0, low_text, high_text


def _lifetime_finding(
    obj: K8sObject, path: str, value: Any, ctx: Context, *, default: str, what: str
) -> Iterator[Finding]:
    low, high, low_text, high_text = _bounds(ctx)
    if value is UNKNOWN:
        yield unknown_finding(obj, path)
        return
    shown = value if value is not None else default
    seconds = go_duration(shown)
    unset = " (unset: the default)" if value is None else ""
    if seconds is None:
        yield finding(
            obj,
            path,
            f"{show(shown)!r} is not a Go duration: {what} falls back to its default",
            f"set a duration between {low_text} and {high_text}",
        )
    elif seconds > high:
        yield finding(
            obj,
            path,
            f"{what} may be up to {show(shown)}{unset}, above the {high_text} allowed: a "
            "stolen workload certificate stays a valid identity for that long",
            f"set it to {high_text} or less",
        )
    elif seconds < low:
        yield finding(
            obj,
            path,
            f"{what} is {show(shown)}, below the {low_text} allowed: every proxy renews at half "
            "of it, flooding the CA",
            f"set it to {low_text} or more",
        )


def _lifetime(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    for csr in _csr_of(obj):
        for where in csr.unknowns:
            yield unknown_finding(obj, where)
        if csr.lifetime is UNKNOWN:
            continue
        yield from _lifetime_finding(
            obj,
            csr.lifetime_path,
            csr.lifetime,
            ctx,
            default=ISTIO_CSR_MAX_DEFAULT,
            what="istio-csr's workload certificate lifetime",
        )
    for source in istiod_sources([obj]):
        on = ca_server_on(source)
        if on is False:
            continue
        unknowns = source.unknown_for("ENABLE_CA_SERVER") + source.unknown_for(
            "MAX_WORKLOAD_CERT_TTL"
        )
        for where in dict.fromkeys(unknowns):
            yield unknown_finding(obj, where)
        setting = source.env("MAX_WORKLOAD_CERT_TTL")
        if setting is not None and setting.indirect:
            yield finding(
                obj,
                setting.path,
                "MAX_WORKLOAD_CERT_TTL is read from a ConfigMap or Secret: the cap on "
                "workload certificate lifetime can change unseen by this stack",
                "set it as a literal value",
            )
            continue
        if unknowns and (setting is None or setting.value is UNKNOWN):
            continue
        yield from _lifetime_finding(
            obj,
            setting.path if setting else source.field("env.MAX_WORKLOAD_CERT_TTL"),
            setting.value if setting else None,
            ctx,
            default=ISTIOD_MAX_TTL_DEFAULT,
            what="istiod's maximum workload certificate lifetime (MAX_WORKLOAD_CERT_TTL)",
        )


def _lifetime_applies(obj: K8sObject) -> bool:
    if obj.group_kind == HELM_VALUES:
        return get(obj.body, "chart") in ISTIO_CSR_CHARTS | ISTIOD_CHARTS
    return obj.group_kind in WORKLOADS or obj.group_kind == ISTIO_OPERATOR


_EXEMPT_STACKS_SCHEMA: Final = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "default": {},
    "description": "Stacks (name or glob, e.g. `dev`, `preview-*`) that may use a self-signed "
    "mesh root, each with the reason (an empty reason does not exempt).",
}


POLICIES: Final = (
    Policy(
        name="mesh-ca-istiod-ca-off-with-istio-csr",
        description="When istio-csr is the mesh CA, istiod's own CA server is off everywhere "
        "istiod is configured.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation='Set ENABLE_CA_SERVER: "false" in istiod\'s env (chart values `env` or '
        "`pilot.env`, IstioOperator, or the istiod Deployment), as a literal, and leave "
        "ENABLE_CLUSTER_TRUST_BUNDLE_API unset.",
        catches="istiod chart values, an IstioOperator or an istiod Deployment in a stack that "
        "runs istio-csr (chart values or its image) where ENABLE_CA_SERVER is unset, anything "
        "Go does not parse as false (e.g. 'no', 'off': istiod then keeps the default, on), or "
        "read from a ConfigMap/Secret (envVarFrom, valueFrom); and "
        "ENABLE_CLUSTER_TRUST_BUNDLE_API, which moves proxies' trust to ClusterTrustBundles.",
        check_stack=_istiod_ca_off,
        kinds=PKI_KINDS,
    ),
    Policy(
        name="mesh-ca-workloads-use-istio-csr",
        description="When istio-csr is the mesh CA, every proxy asks istio-csr for its "
        "certificate and trusts only its roots.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Point global.caAddress at istio-csr's Service (host in its "
        "app.tls.certificateDNSNames, port service.port) and remove every other CA address, "
        "extra trust anchor and runtime issuer selection.",
        catches="istiod values or an IstioOperator whose global.caAddress is unset or not "
        "istio-csr, global.caName / global.trustBundleName set; mesh config with `ca`, "
        "`caCertificates`, or defaultConfig CA_ADDR / caCertificatesPem; a pod's "
        "proxy.istio.io/config annotation or a ProxyConfig setting CA_ADDR or extra roots; a "
        "hand-injected istio-proxy with another CA_ADDR; istio-csr with caTrustedNodeAccounts or "
        "an issuer chosen at runtime by a ConfigMap.",
        check_stack=_workloads_use_istio_csr,
        kinds=PKI_KINDS,
    ),
    Policy(
        name="mesh-ca-forbid-self-signed-root",
        description="Workload certificates chain to a root from outside the cluster, unless the "
        "stack is exempted with a reason.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Sign workload certificates with your PKI (istio-csr with an issuer you run "
        "or a CA Secret holding an intermediate of your root; or istiod with cacerts), or list "
        "the stack in exemptStacks with the reason (e.g. a kind cluster for development).",
        catches="istio-csr whose issuer is, or chains through CA Issuers and Certificates of the "
        "stack to, a cert-manager selfSigned issuer; istiod signing with its own self-signed "
        "root (CA server on, no cacerts Secret or Certificate in the stack); a cacerts "
        "Certificate that chains to a selfSigned issuer. The stack name comes from the "
        "resources' URNs.",
        check_stack=_self_signed_root,
        kinds=frozenset({*PKI_KINDS, ISSUER, CLUSTER_ISSUER, CERTIFICATE, SECRET}),
        config={
            "exemptStacks": _EXEMPT_STACKS_SCHEMA,
            "clusterResourceNamespace": {
                "type": "string",
                "default": "cert-manager",
                "description": "Where cert-manager reads ClusterIssuers' CA Secrets from.",
            },
        },
    ),
    Policy(
        name="mesh-ca-workload-cert-lifetime-bounded",
        description="The mesh CA caps workload certificate lifetime within the configured bounds.",
        severity=Severity.MEDIUM,
        level=Level.MANDATORY,
        remediation="Set istio-csr's app.server.maxCertificateDuration, or istiod's "
        "MAX_WORKLOAD_CERT_TTL when its CA is on, within minWorkloadCertLifetime.."
        "maxWorkloadCertLifetime.",
        catches="istio-csr (values or its Deployment's --max-client-certificate-duration) "
        "allowing longer than the maximum or shorter than the minimum; istiod with its CA on "
        "and MAX_WORKLOAD_CERT_TTL unset (Istio's default: 90 days, which any pod may request "
        "through its proxy config), too long, unparsable or read from a ConfigMap/Secret.",
        check=_lifetime,
        kinds=frozenset({HELM_VALUES, ISTIO_OPERATOR, *WORKLOADS}),
        only=_lifetime_applies,
        config={
            "maxWorkloadCertLifetime": {
                "type": "string",
                "default": "24h",
                "description": "The longest workload certificate lifetime the CA may grant "
                "(Go duration).",
            },
            "minWorkloadCertLifetime": {
                "type": "string",
                "default": "10m",
                "description": "The shortest (Go duration): proxies renew at half of it.",
            },
        },
    ),
)
