"""A real Kubernetes control plane on 127.0.0.1, with simulated nodes, for `make e2e`.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the pinned toolchain, with
generated certificates, service-account keys and a kubeconfig; kwok turns a few Node objects
into ready nodes and moves pods through their lifecycle (Running and Ready, Jobs' pods to
Succeeded). Every process runs in its own process group and the whole tree, with its temporary
directory, is removed when the context exits, on failure too.

What is not real here, and why (docs/e2e.md): the API server runs without webhook admission
(webhook servers are pods, and no pod runs a container here), and nodes are kwok's.

`python -m e2e.cluster --smoke` starts it, proves a Deployment becomes Available and a Job
Completes, and stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from e2e import toolchain
from e2e.kube import Json, Kube, object_path, wait_for

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
# Generous simulated nodes: the platform's requests must fit (the dev stack asks for GPUs too).
NODE_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "250", "nvidia.com/gpu": "8"}
NODE_COUNT = 3
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# kwok's stage sets: nodes become Ready and keep their lease, pods become Ready, Jobs' pods
# complete, deleted pods go away.
KWOK_STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]
# In-process admission stays on (defaults plus the built-in CEL ValidatingAdmissionPolicy);
# only the two plugins that call out to webhook servers are off.
DISABLED_ADMISSION = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and the certificates the control plane needs, made with openssl."""

    dir: Path

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    @classmethod
    def create(cls, base: Path) -> Pki:
        pki = cls(base / "pki")
        pki.dir.mkdir(parents=True)
        d = pki.dir
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=aimesh-e2e-ca",
            "-out", "ca.crt", cwd=d,
        )  # fmt: skip
        # Service-account tokens: signed by the API server, verified by it and the controllers.
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", "sa.key", cwd=d)  # fmt: skip
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
        pki.issue(
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth",
        )
        pki.issue("admin", "/O=system:masters/CN=aimesh-e2e-admin", "extendedKeyUsage=clientAuth")
        pki.issue(
            "controller-manager",
            "/CN=system:kube-controller-manager",
            "extendedKeyUsage=clientAuth",
        )
        pki.issue("scheduler", "/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth")
        return pki

    def issue(self, name: str, subject: str, extensions: str) -> None:
        d = self.dir
        (d / f"{name}.ext").write_text(extensions + "\n")
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key",
                 cwd=d)  # fmt: skip
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr",
                 cwd=d)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
            cwd=d,
        )  # fmt: skip


def kubeconfig_text(server: str, pki: Pki, user: str) -> str:
    """A kubeconfig for `user`'s client certificate (paths embedded as data, self-contained)."""
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: aimesh-e2e\n  cluster:\n    server: {server}\n"
        f"    certificate-authority-data: {b64(pki.crt('ca'))}\n"
        f"users:\n- name: {user}\n  user:\n"
        f"    client-certificate-data: {b64(pki.crt(user))}\n"
        f"    client-key-data: {b64(pki.key(user))}\n"
        f"contexts:\n- name: aimesh-e2e\n  context:\n    cluster: aimesh-e2e\n    user: {user}\n"
        "current-context: aimesh-e2e\n"
    )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_handle: IO[bytes]


@dataclass
class Cluster:
    """A running control plane; use `Cluster.start()` as a context manager."""

    dir: Path
    tc: toolchain.Toolchain
    pki: Pki
    server: str = ""
    kubeconfig: Path = field(default_factory=Path)
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def api(self) -> Kube:
        return Kube(self.server, self.pki.crt("ca"), self.pki.crt("admin"), self.pki.key("admin"))

    def spawn(self, name: str, argv: list[str]) -> Process:
        log = self.dir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        handle = log.open("wb")
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            # Own process group: teardown signals the tool and anything it started.
            start_new_session=True,
        )
        proc = Process(name, popen, log, handle)
        self.processes.append(proc)
        return proc

    def check_alive(self) -> None:
        for proc in self.processes:
            code = proc.popen.poll()
            if code is not None:
                tail = proc.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{proc.name} exited with {code}; its log ends:\n{tail}")

    def wait(self, what: str, check: Any, timeout: float = 120) -> None:
        def guarded() -> bool:
            self.check_alive()
            return bool(check())

        self.timings[what] = round(wait_for(what, guarded, timeout=timeout), 2)

    def stop(self) -> None:
        """Stop every process group, newest first: SIGTERM, then SIGKILL after 10 seconds."""
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.processes):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
            proc.log_handle.close()

    # -- the components, in start order ------------------------------------------------------

    def start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self.spawn(
            "etcd",
            [
                str(self.tc.tool("etcd")),
                "--name=e2e",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                # A throwaway store on loopback: no fsync (speed), plain HTTP (nothing leaves
                # the machine; the API server is the only client).
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310
                return b'"true"' in resp.read()

        self.wait("etcd healthy", healthy, timeout=60)
        return url

    def start_apiserver(self, etcd_url: str) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self.pki
        self.spawn(
            "kube-apiserver",
            [
                str(self.tc.tool("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki.crt('apiserver')}",
                f"--tls-private-key-file={pki.key('apiserver')}",
                f"--client-ca-file={pki.crt('ca')}",
                f"--service-account-key-file={pki.dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki.key('sa')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                f"--disable-admission-plugins={DISABLED_ADMISSION}",
                # Only what this process serves; nothing here is reachable from outside.
                "--allow-privileged=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        api = self.api
        self.wait("kube-apiserver ready", lambda: api.request("GET", "/readyz").get("text") == "ok")

    def write_kubeconfigs(self) -> None:
        for user in ("admin", "controller-manager", "scheduler"):
            path = self.dir / f"{user}.kubeconfig"
            path.write_text(kubeconfig_text(self.server, self.pki, user))
            path.chmod(0o600)
        self.kubeconfig = self.dir / "admin.kubeconfig"

    def start_controllers(self) -> None:
        pki = self.pki
        self.spawn(
            "kube-controller-manager",
            [
                str(self.tc.tool("kube-controller-manager")),
                f"--kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki.key('sa')}",
                f"--root-ca-file={pki.crt('ca')}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [
                str(self.tc.tool("kube-scheduler")),
                f"--kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.dir / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        api = self.api
        # The service-account and root-CA controllers are running once `default` has both.
        self.wait(
            "controllers running",
            lambda: (
                api.get(object_path("v1", "serviceaccounts", "default", "default"))
                and api.get(object_path("v1", "configmaps", "kube-root-ca.crt", "default"))
            ),
        )

    def start_kwok(self) -> None:
        stages = self.dir / "kwok-stages.yaml"
        stages.write_text(
            "\n---\n".join((self.tc.kwok_stages / s).read_text() for s in KWOK_STAGES)
        )
        self.spawn(
            "kwok",
            [
                str(self.tc.tool("kwok")),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        api = self.api
        for index in range(NODE_COUNT):
            api.request(
                "POST",
                "/api/v1/nodes",
                node(f"kwok-node-{index}", toolchain.load_pins()["kubernetes"]["version"]),
            )
        self.wait("simulated nodes Ready", lambda: _nodes_ready(api) == NODE_COUNT)

    @classmethod
    @contextlib.contextmanager
    def start(cls, tc: toolchain.Toolchain, base: Path | None = None) -> Iterator[Cluster]:
        """Start everything; stop it and remove its directory however the block ends."""
        workdir = Path(tempfile.mkdtemp(prefix="aimesh-e2e-cluster-", dir=base))
        cluster = cls(dir=workdir, tc=tc, pki=Pki.create(workdir))
        try:
            started = time.monotonic()
            etcd = cluster.start_etcd()
            cluster.start_apiserver(etcd)
            cluster.write_kubeconfigs()
            cluster.start_controllers()
            cluster.start_kwok()
            cluster.timings["total"] = round(time.monotonic() - started, 2)
            yield cluster
        finally:
            cluster.stop()
            if os.environ.get("AIMESH_E2E_KEEP"):
                print(f"kept the cluster directory (logs): {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def node(name: str, kubelet_version: str) -> Json:
    """A simulated node. Its kubelet reports the control plane's version, as a real node of the
    cluster would (kwok keeps a nodeInfo it is given; its own is `kwok-<version>`, which no
    version check can read: the program asks every kubelet, aimesh/cluster_version.py)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "capacity": NODE_CAPACITY,
            "allocatable": NODE_CAPACITY,
            "nodeInfo": {"kubeletVersion": kubelet_version},
        },
    }


def _condition(obj: Json | None, kind: str) -> str:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return ""


def _nodes_ready(api: Kube) -> int:
    return sum(_condition(n, "Ready") == "True" for n in api.items("/api/v1/nodes"))


def smoke(cluster: Cluster) -> dict[str, float]:
    """A Deployment becomes Available and a Job Completes, on simulated nodes."""
    api = cluster.api
    ns = "e2e-smoke"
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    labels = {"app": "smoke"}
    container = {"name": "main", "image": "registry.k8s.io/pause:3.10"}
    api.request(
        "POST",
        object_path("apps/v1", "deployments", namespace=ns),
        {
            "metadata": {"name": "smoke"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
    )
    api.request(
        "POST",
        object_path("batch/v1", "jobs", namespace=ns),
        {
            "metadata": {"name": "smoke"},
            "spec": {
                "backoffLimit": 0,
                "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            },
        },
    )
    timings: dict[str, float] = {}
    timings["deployment Available"] = wait_for(
        "smoke Deployment Available",
        lambda: (
            _condition(api.get(object_path("apps/v1", "deployments", "smoke", ns)), "Available")
            == "True"
        ),
    )
    timings["job Complete"] = wait_for(
        "smoke Job Complete",
        lambda: (
            _condition(api.get(object_path("batch/v1", "jobs", "smoke", ns)), "Complete") == "True"
        ),
    )
    api.delete(object_path("v1", "namespaces", ns))
    timings["namespace deleted"] = wait_for(
        "smoke namespace gone", lambda: api.get(object_path("v1", "namespaces", ns)) is None
    )
    return {k: round(v, 2) for k, v in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start the e2e control plane on 127.0.0.1")
    parser.add_argument("--smoke", action="store_true", help="Deployment + Job smoke test")
    parser.add_argument("--hold", action="store_true", help="keep running until Ctrl-C")
    args = parser.parse_args(argv)
    tc = toolchain.current()
    if not tc.ready():
        print("e2e toolchain not built: run `python -m e2e.toolchain` first", file=sys.stderr)
        return 2
    with Cluster.start(tc) as cluster:
        print(f"control plane up in {cluster.timings}: kubeconfig {cluster.kubeconfig}")
        if args.smoke:
            print("smoke:", smoke(cluster))
        if args.hold:
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
