"""Build the pinned end-to-end toolchain from the Go module proxy, into a cache outside the repo.

`python -m e2e.toolchain` builds (or reuses) `~/.cache/aimesh/e2e/<hash>/`: the Pulumi CLI, the
Kubernetes provider installed as a plugin, kube-apiserver, kube-controller-manager,
kube-scheduler, etcd and kwok with its stage files. The hash covers `e2e/pins.toml`, the wrapper
modules in `e2e/go/` and the build flags, so a changed pin builds anew and an unchanged one is
reused. `--regen` rewrites the wrapper modules' go.mod/go.sum from the pins (`go mod tidy`).

Why committed wrapper modules: their go.sum pins every module's checksum, so CI builds exactly
what was reviewed and never resolves a dependency graph anew (`-mod=readonly`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PINS = HERE / "pins.toml"
MODULES = HERE / "go"
# Bumped when the way a tool is built changes (flags, layout), so old caches are not reused.
RECIPE = "3"
# Static, reproducible, smaller binaries: what upstream release builds do, minus debug info.
BUILD_FLAGS = ["-trimpath", "-buildvcs=false"]
LDFLAGS_BASE = "-s -w"


def cache_root() -> Path:
    """Where toolchains live: $AIMESH_E2E_CACHE or ~/.cache/aimesh/e2e (XDG_CACHE_HOME honoured)."""
    if env := os.environ.get("AIMESH_E2E_CACHE"):
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "aimesh" / "e2e"


def load_pins() -> dict[str, Any]:
    with PINS.open("rb") as fh:
        return tomllib.load(fh)


def pins_hash() -> str:
    """A short hash of everything that decides what gets built."""
    digest = hashlib.sha256(RECIPE.encode())
    files = [PINS, *sorted(p for p in MODULES.rglob("*") if p.is_file())]
    for path in files:
        digest.update(str(path.relative_to(HERE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Toolchain:
    """Paths of one built toolchain."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def kwok_stages(self) -> Path:
        return self.root / "kwok-stages"

    @property
    def charts(self) -> Path:
        return self.root / "charts"

    @property
    def manifest(self) -> Path:
        return self.root / "toolchain.json"

    def tool(self, name: str) -> Path:
        return self.bin / name

    def ready(self) -> bool:
        return self.manifest.is_file()

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.manifest.read_text())
        return data


def current() -> Toolchain:
    return Toolchain(cache_root() / pins_hash())


def go_env(root: Path) -> dict[str, str]:
    """One module cache and one build cache for every build: shared packages compile once."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(root / "go" / "mod"),
        GOCACHE=str(root / "go" / "build"),
        # The module cache stays removable (read-only files otherwise).
        GOFLAGS="-modcacherw -mod=readonly",
        CGO_ENABLED="0",
        # Never fetch another Go: a pin needing one must say so (pins.toml `go`).
        GOTOOLCHAIN="local",
    )
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("+", " ".join(cmd), f"(in {cwd})", flush=True)
    result = subprocess.run(cmd, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"e2e toolchain: `{' '.join(cmd)}` failed ({result.returncode})")


def _go_output(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        ["go", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


# -- wrapper modules ---------------------------------------------------------------------------

PROVIDER_MAIN = """\
// The Kubernetes provider's own main embeds generated files that are not in its Go module
// (schema-embed.json, terraform-mapping-embed.json). This one embeds the same files, written
// by e2e/toolchain.py from the module's committed schema.json (version set) and
// terraform-mapping.json, and serves the provider exactly as upstream's main does.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
"""

ETCD_MAIN = """\
// etcd's server module has no main package of its own (upstream's lives in the repository's
// root module, which the proxy does not serve at v3.6): this is that main, one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
"""


CERT_MANAGER_MAIN = """\
// cert-manager's controller, out of the cluster, for the e2e control plane. Upstream's main
// (cmd/controller) is a module of its own that the Go module proxy does not serve; this main
// does what its app.Run does with the importable pieces of github.com/cert-manager/cert-manager:
// one controller.ContextFactory, every controller registered by the packages imported below,
// then the shared informers. Only the controllers behind aimesh's self-signed root -> CA issuer
// chain are compiled in (no ACME, Vault or Venafi): the issuers, the Certificate pipeline, the
// CertificateRequest approver and the self-signed and CA signers. No leader election, metrics
// or health servers: one instance, on 127.0.0.1's API server only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"k8s.io/klog/v2"

	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager",
		"where ClusterIssuers' secrets live (the chart passes its own namespace)")
	workers := flag.Int("workers", 5, "workers per controller (upstream's default)")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	flag.Var(&verbosity{klogFlags}, "v", "log verbosity (klog -v)")
	flag.Parse()
	logf.InitLogs()
	defer logf.FlushLogs()

	root, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root = logf.NewContext(root, logf.Log, "cert-manager-controller")
	log := logf.FromContext(root)

	// Upstream's defaults (internal/apis/config/controller/v1alpha1) of what they read.
	factory, err := controller.NewContextFactory(root, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes: []string{
				"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/",
			},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}
	base, err := factory.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}

	names := make([]string, 0, len(controller.Known()))
	for name := range controller.Known() {
		names = append(names, name)
	}
	sort.Strings(names)
	log.Info("starting controllers", "controllers", names)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		iface, err := controller.Known()[name](factory)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cert-manager controller %s: %v\\n", name, err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := iface.Run(*workers, root); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				stop()
			}
		}()
	}
	base.SharedInformerFactory.Start(root.Done())
	base.KubeSharedInformerFactory.Start(root.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(root.Done())
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}
}

// verbosity forwards -v to klog, which cert-manager's logr logger writes through.
type verbosity struct{ fs *flag.FlagSet }

func (v *verbosity) String() string     { return "" }
func (v *verbosity) Set(s string) error { return v.fs.Set("v", s) }
"""


def _staging_replaces(kube_mod: str, staging_version: str) -> list[str]:
    """Every k8s.io module that k8s.io/kubernetes requires at v0.0.0 (its staging tree)."""
    names = re.findall(r"^\s+(k8s\.io/[\w./-]+) v0\.0\.0$", kube_mod, flags=re.M)
    return [f"\t{name} => {name} {staging_version}" for name in sorted(set(names))]


def skeletons(pins: dict[str, Any], kube_mod: str) -> dict[str, dict[str, str]]:
    """The wrapper modules before `go mod tidy`: go.mod heads and their main packages."""
    p, prov, kube, kwok, etcd, cm = (
        pins["pulumi"],
        pins["provider"],
        pins["kubernetes"],
        pins["kwok"],
        pins["etcd"],
        pins["cert-manager"],
    )
    header = "// Generated by `python -m e2e.toolchain --regen` from e2e/pins.toml. Do not edit.\n"
    kube_tools = "".join(f"\t{kube['module']}/{c}\n" for c in kube["commands"])
    return {
        "pulumi": {
            "go.mod": f"{header}module aimesh.e2e/pulumi\n\ngo 1.26.0\n\n"
            f"require (\n\t{p['module']} {p['version']}\n"
            f"\tgithub.com/pulumi/pulumi/sdk/v3 {p['sdk_version']}\n)\n\n"
            f"tool {p['package']}\n",
        },
        "provider": {
            "go.mod": f"{header}module aimesh.e2e/provider\n\ngo 1.26.0\n\n"
            f"require {prov['module']} {prov['version']}\n",
            "main.go": PROVIDER_MAIN,
        },
        "kube": {
            "go.mod": f"{header}module aimesh.e2e/kube\n\ngo 1.26.0\n\n"
            f"require (\n\t{kube['module']} {kube['version']}\n"
            f"\t{kwok['module']} {kwok['version']}\n)\n\n"
            "replace (\n"
            + "\n".join(_staging_replaces(kube_mod, kube["staging_version"]))
            + f"\n)\n\ntool (\n{kube_tools}\t{kwok['package']}\n)\n",
        },
        "etcd": {
            "go.mod": f"{header}module aimesh.e2e/etcd\n\ngo 1.26.0\n\n"
            f"require {etcd['module']} {etcd['version']}\n",
            "main.go": ETCD_MAIN,
        },
        "certmanager": {
            "go.mod": f"{header}module aimesh.e2e/certmanager\n\ngo 1.26.0\n\n"
            f"require {cm['module']} {cm['version']}\n",
            "main.go": CERT_MANAGER_MAIN,
        },
    }


def _download(module: str, version: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    out = _go_output(["mod", "download", "-json", f"{module}@{version}"], cwd, env)
    data: dict[str, Any] = json.loads(out)
    if data.get("Error"):
        raise SystemExit(f"e2e toolchain: go mod download {module}@{version}: {data['Error']}")
    return data


def _provider_embeds(pins: dict[str, Any], env: dict[str, str], dest: Path) -> None:
    """schema-embed.json with the plugin version set, and the compacted terraform mapping."""
    prov = pins["provider"]
    module_dir = Path(_download(prov["module"], prov["version"], env, dest)["Dir"])
    cmd_dir = module_dir / "cmd" / "pulumi-resource-kubernetes"
    schema = json.loads((cmd_dir / "schema.json").read_text())
    schema["version"] = prov["plugin_version"]
    (dest / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    mapping = json.loads((cmd_dir / "terraform-mapping.json").read_text())
    (dest / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))


def regen(root: Path, only: list[str] | None = None) -> None:
    """Rewrite e2e/go/*/go.mod and go.sum from the pins (needs the Go module proxy); `only`
    names the wrapper modules to rewrite (all by default)."""
    pins = load_pins()
    env = go_env(root)
    env["GOFLAGS"] = "-modcacherw -mod=mod"
    with tempfile.TemporaryDirectory() as tmp:
        kube = pins["kubernetes"]
        kube_mod = Path(_download(kube["module"], kube["version"], env, Path(tmp))["GoMod"])
        for name, files in skeletons(pins, kube_mod.read_text()).items():
            if only and name not in only:
                continue
            work = Path(tmp) / name
            work.mkdir()
            for fname, text in files.items():
                (work / fname).write_text(text)
            if name == "provider":
                _provider_embeds(pins, env, work)
            _run(["go", "mod", "tidy"], work, env)
            out = MODULES / name
            out.mkdir(parents=True, exist_ok=True)
            for fname in [*files, "go.sum"]:
                shutil.copyfile(work / fname, out / fname)
    print(f"wrapper modules written to {MODULES}; toolchain hash now {pins_hash()}")


# -- build -------------------------------------------------------------------------------------


def _ldflags(*defs: str) -> str:
    return " ".join([LDFLAGS_BASE, *(f"-X {d}" for d in defs)])


def build(tc: Toolchain, *, force: bool = False) -> dict[str, Any]:
    """Build every tool into tc.root unless it is already complete; return its manifest."""
    if tc.ready() and not force:
        return tc.info()
    pins = load_pins()
    env = go_env(tc.root.parent)
    started = time.monotonic()
    work = tc.root / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(MODULES, work)
    tc.bin.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def go_build(module: str, out: str, package: str, ldflags: str, tags: str = "") -> None:
        t0 = time.monotonic()
        cmd = ["go", "build", *BUILD_FLAGS, "-ldflags", ldflags, "-o", str(tc.tool(out))]
        if tags:
            cmd += ["-tags", tags]
        _run([*cmd, package], work / module, env)
        timings[out] = round(time.monotonic() - t0, 1)

    p = pins["pulumi"]
    go_build(
        "pulumi",
        "pulumi",
        p["package"],
        _ldflags(f"github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={p['version']}"),
        p["tags"],
    )

    prov = pins["provider"]
    _provider_embeds(pins, env, work / "provider")
    plugin_dir = tc.plugins / f"resource-kubernetes-v{prov['plugin_version']}"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    go_build(
        "provider",
        "pulumi-resource-kubernetes",
        ".",
        _ldflags(f"{prov['module']}/pkg/version.Version={prov['plugin_version']}"),
    )
    shutil.copy2(tc.tool("pulumi-resource-kubernetes"), plugin_dir / "pulumi-resource-kubernetes")

    go_build("etcd", "etcd", ".", LDFLAGS_BASE)

    cm = pins["cert-manager"]
    go_build(
        "certmanager",
        "cert-manager-controller",
        ".",
        _ldflags(f"{cm['module']}/pkg/util.AppVersion={cm['version']}"),
    )

    kube = pins["kubernetes"]
    major, minor = kube["version"].lstrip("v").split(".")[:2]
    version_defs = [
        f"k8s.io/component-base/version.gitVersion={kube['version']}",
        f"k8s.io/component-base/version.gitMajor={major}",
        f"k8s.io/component-base/version.gitMinor={minor}",
        "k8s.io/component-base/version.gitTreeState=clean",
    ]
    for command in kube["commands"]:
        go_build(
            "kube",
            command.rsplit("/", 1)[-1],
            f"{kube['module']}/{command}",
            _ldflags(*version_defs),
        )
    kwok = pins["kwok"]
    go_build("kube", "kwok", kwok["package"], LDFLAGS_BASE)
    kwok_dir = Path(_download(kwok["module"], kwok["version"], env, work / "kube")["Dir"])
    stages = kwok_dir / kwok["stages"]
    for yaml_file in sorted(stages.rglob("*.yaml")):
        if yaml_file.name != "kustomization.yaml" and "testdata" not in yaml_file.parts:
            dest = tc.kwok_stages / yaml_file.relative_to(stages)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(yaml_file, dest)

    for name, chart in pins.get("charts", {}).items():
        package_chart(name, chart, env, work, tc.charts)

    shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "hash": tc.root.name,
        "pins": pins,
        "go": _go_output(["version"], tc.root, env).strip(),
        "build_seconds": round(time.monotonic() - started, 1),
        "tool_seconds": timings,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tc.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def package_chart(
    name: str, chart: dict[str, Any], env: dict[str, str], cwd: Path, dest: Path
) -> Path:
    """`<dest>/<name>-<version>.tgz` from a chart folder inside a Go module, as `helm package`
    lays it out (one top folder named for the chart), byte-for-byte reproducible."""
    import gzip
    import io
    import tarfile

    source = Path(_download(chart["module"], chart["version"], env, cwd)["Dir"]) / chart["path"]
    chart_yaml = (source / "Chart.yaml").read_text()
    if chart.get("stamp"):
        chart_yaml = re.sub(
            r"^version: .*$", f"version: {chart['version']}", chart_yaml, flags=re.M
        )
        chart_yaml = re.sub(
            r"^appVersion: .*$", f"appVersion: {chart['version']}", chart_yaml, flags=re.M
        )
    if not re.search(rf"^version: {re.escape(chart['version'])}$", chart_yaml, flags=re.M):
        raise SystemExit(f"e2e toolchain: chart {name} at {source} is not {chart['version']}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            if path.is_dir() or rel.parts[0] == "tests":
                continue
            data = chart_yaml.encode() if rel == Path("Chart.yaml") else path.read_bytes()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{name}-{chart['version']}.tgz"
    out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--regen",
        nargs="*",
        metavar="MODULE",
        help="rewrite e2e/go (or only the named wrapper modules) from the pins",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--print-root", action="store_true", help="print the toolchain dir")
    args = parser.parse_args(argv)
    if args.regen is not None:
        regen(cache_root(), args.regen)
        return 0
    tc = current()
    if args.print_root:
        print(tc.root)
        return 0
    started = time.monotonic()
    cached = tc.ready() and not args.force
    manifest = build(tc, force=args.force)
    took = round(time.monotonic() - started, 1)
    state = "reused" if cached else f"built in {manifest['build_seconds']}s"
    print(f"e2e toolchain {tc.root} ({state}; this call {took}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
