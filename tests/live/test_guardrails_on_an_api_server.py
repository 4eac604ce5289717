"""The runtime guardrails in a real kube-apiserver: every route a model manager could try is
refused by the guardrail that names it, the program's own objects (and an injected model Pod)
are admitted, and the window controller can open and close its window and do nothing else.

It needs etcd and kube-apiserver binaries (the end-to-end toolchain builds them from the pinned
Go modules into ~/.cache/aimesh/e2e/<hash>/bin; `AIMESH_KUBE_BIN` names another directory) and
`openssl` for the test PKI; without them it skips, saying so. Everything listens on 127.0.0.1.
Built-in admission is real here: ValidatingAdmissionPolicy (CEL) and Pod Security; there are no
webhooks (no Istio injector, no KServe controller), so Pods are judged as the probe writes them.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import guardrail_probe

pytestmark = pytest.mark.usefixtures("upstream_available")


def _binaries() -> Path | None:
    configured = os.environ.get("AIMESH_KUBE_BIN")
    candidates = [Path(configured)] if configured else []
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aimesh" / "e2e"
    if cache.is_dir():
        candidates += sorted(
            (d / "bin" for d in cache.iterdir()),
            key=lambda p: p.stat().st_mtime if p.exists() else 0,
        )[::-1]
    for directory in candidates:
        if (directory / "kube-apiserver").is_file() and (directory / "etcd").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(directory: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "1", "-subj", "/CN=aimesh-test-ca", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "api.key", "-out", "api.csr",
             "-subj", "/CN=kube-apiserver", cwd=directory)  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "api.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "api.crt", "-days", "1", "-extfile", "san.cnf",
             cwd=directory)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binaries = _binaries()
    if binaries is None:
        pytest.skip(
            "no etcd/kube-apiserver binaries (make e2e builds them; or set AIMESH_KUBE_BIN)"
        )
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test API server's certificates)")
    directory = tmp_path_factory.mktemp("apiserver")
    _pki(directory)
    token = "guardrail-probe-admin"
    (directory / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    logs = (directory / "etcd.log").open("w"), (directory / "apiserver.log").open("w")
    etcd = subprocess.Popen(
        [
            str(binaries / "etcd"),
            "--name=probe",
            f"--data-dir={directory / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=probe=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    apiserver = subprocess.Popen(
        [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={directory / 'api.crt'}",
            f"--tls-private-key-file={directory / 'api.key'}",
            f"--client-ca-file={directory / 'ca.crt'}",
            f"--service-account-key-file={directory / 'sa.pub'}",
            f"--service-account-signing-key-file={directory / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            f"--token-auth-file={directory / 'tokens.csv'}",
            "--profiling=false",
        ],
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(api_port, token, directory / "ca.crt")
        path = directory / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: probe\n"
            f"clusters: [{{name: probe, cluster: {{server: 'https://127.0.0.1:{api_port}', "
            f"certificate-authority: '{directory / 'ca.crt'}'}}}}]\n"
            f"users: [{{name: admin, user: {{token: {token}}}}}]\n"
            "contexts: [{name: probe, context: {cluster: probe, user: admin}}]\n"
        )
        yield str(path)
    finally:
        for process in (apiserver, etcd):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def _wait_ready(port: int, token: str, ca: Path, timeout: float = 120) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"kube-apiserver on 127.0.0.1:{port} not ready within {timeout:.0f}s")


@pytest.mark.usefixtures("upstream_available")  # the CRDs come from the upstream reference data
def test_every_guardrail_holds_in_a_real_api_server(kubeconfig: str) -> None:
    config = guardrail_probe.stack_settings("dev")
    guardrail_probe.install(kubeconfig, config)
    outcomes = guardrail_probe.run(kubeconfig, config)
    failed = [
        f"{o.case.name}: expected {o.case.expect}, got {o.got} ({o.detail[:200]})"
        for o in outcomes
        if not o.ok
    ]
    assert failed == []
    # Every manager route was tried, each refused by the guardrail that names it.
    refused = {o.got for o in outcomes if o.case.who.user != guardrail_probe.ADMIN}
    assert {
        "model-workload-require-own-service-account",
        "workload-forbid-host-namespaces",
    } <= refused
    assert len(outcomes) >= 40
