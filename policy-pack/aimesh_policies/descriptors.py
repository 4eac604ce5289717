"""Where the Envoy/Istio API descriptor set lives, and how it is built (one command).

The set is a `google.protobuf.FileDescriptorSet` of the Envoy API and Istio's mesh and
networking APIs at the versions Istio 1.30.3 ships. A small Go program in `policy-pack/descriptors/`
(its own module: `go.mod` there is the ONE place the versions are pinned) links in the generated
Go packages, which carry their file descriptors, and writes them all out. Python cannot get
them any other way without copying `.proto` files into the repository.

    make descriptors                                   # from the repository root
    python -m aimesh_policies.descriptors [--print-path | --check]   # in policy-pack/

The output is cached outside the repository, keyed by a hash of the Go module (pins, sums,
program): `$AIMESH_DESCRIPTORS_CACHE` or `~/.cache/aimesh/descriptors/<hash>/envoy.binpb`
(XDG_CACHE_HOME honoured), with the Go module and build caches beside it. An unchanged module
reuses it; a changed pin builds anew. `$AIMESH_ENVOY_DESCRIPTORS` names a set built elsewhere
(e.g. a CI artifact) and takes precedence.

Importing this module never runs Go; only `build()` does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

# The Go module that writes the set (beside this package, inside the pack directory).
MODULE_DIR: Final = Path(__file__).resolve().parent.parent / "descriptors"
MODULE_FILES: Final = ("go.mod", "go.sum", "main.go", "imports.go")
FILE_NAME: Final = "envoy.binpb"
# Bumped when the way the set is built changes, so old caches are not reused.
RECIPE: Final = "1"
ENV_SET: Final = "AIMESH_ENVOY_DESCRIPTORS"
ENV_CACHE: Final = "AIMESH_DESCRIPTORS_CACHE"
# What a user runs to get the set (shown in "cannot verify" findings).
BUILD_COMMAND: Final = (
    "`make descriptors` in the aimesh repository (needs Go; in policy-pack/: "
    "`python -m aimesh_policies.descriptors`), or set AIMESH_ENVOY_DESCRIPTORS to a built set"
)


class DescriptorsError(RuntimeError):
    """The set cannot be built here (no Go, no module directory, a failed build)."""


def cache_root() -> Path:
    if env := os.environ.get(ENV_CACHE):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "aimesh" / "descriptors"


def pins_hash() -> str | None:
    """A short hash of everything that decides the set's content; None when the Go module is
    not beside the pack (a copied pack: then only $AIMESH_ENVOY_DESCRIPTORS can name a set)."""
    stamps = []
    for name in MODULE_FILES:
        try:
            stat = (MODULE_DIR / name).stat()
        except OSError:
            return None
        stamps.append((name, stat.st_mtime_ns, stat.st_size))
    # The pack asks once per EnvoyFilter: hash the files only when they changed.
    return _hash(MODULE_DIR, tuple(stamps))


@lru_cache(maxsize=8)
def _hash(module_dir: Path, stamps: tuple[tuple[str, int, int], ...]) -> str | None:
    digest = hashlib.sha256(RECIPE.encode())
    for name, _, _ in stamps:
        try:
            content = (module_dir / name).read_bytes()
        except OSError:
            return None
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def default_path() -> Path | None:
    """Where the set for the current pins is (or would be) cached."""
    key = pins_hash()
    return None if key is None else cache_root() / key / FILE_NAME


def locate() -> Path | None:
    """The set to decode against, if one is available: $AIMESH_ENVOY_DESCRIPTORS (when it names
    a file), else the cached set for the current pins."""
    explicit = os.environ.get(ENV_SET)
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() else None
    cached = default_path()
    return cached if cached is not None and cached.is_file() else None


_FOUND: dict[tuple[object, ...], Path] = {}


def located() -> Path | None:
    """`locate()`, remembered once a set is found (per environment and module directory): the
    pack asks once per EnvoyFilter and mesh config, and a found set does not move during a
    preview. A set not found yet is looked for again next time (it may have been built since)."""
    env = os.environ
    key = (MODULE_DIR, *(env.get(k) for k in (ENV_SET, ENV_CACHE, "XDG_CACHE_HOME", "HOME")))
    found = _FOUND.get(key)
    if found is None:
        found = locate()
        if found is not None:
            _FOUND[key] = found
    return found


def go_available() -> bool:
    return shutil.which("go") is not None


def _go_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # Private module and build caches: removable with the cache, shared by every pin set.
        GOMODCACHE=str(root / "go" / "mod"),
        GOCACHE=str(root / "go" / "build"),
        # Exactly the reviewed go.sum, never a fresh resolution; the module cache stays removable.
        GOFLAGS="-modcacherw -mod=readonly",
        CGO_ENABLED="0",
        # Never download another Go toolchain.
        GOTOOLCHAIN="local",
    )
    return env


def build(*, force: bool = False, quiet: bool = False) -> Path:
    """Build the set for the current pins unless it is cached; return its path."""
    target = default_path()
    if target is None:
        raise DescriptorsError(f"the Go module {MODULE_DIR} is missing: cannot build the set")
    if target.is_file() and not force:
        return target
    go = shutil.which("go")
    if go is None:
        raise DescriptorsError(f"Go is not on PATH: cannot build {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    import fcntl  # POSIX only, like the build; the pack itself never builds

    # One build at a time (parallel test workers, make and pytest): the others wait for it.
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and not force:
            return target
        _build(go, target, quiet=quiet)
    return target


def _build(go: str, target: Path, *, quiet: bool) -> None:
    env = _go_env(cache_root())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        program = Path(tmp) / "descriptors"
        output = Path(tmp) / FILE_NAME
        for cmd in (
            [go, "build", "-trimpath", "-o", str(program), "."],
            [str(program), str(output)],
        ):
            if not quiet:
                print("+", " ".join(cmd), f"(in {MODULE_DIR})", file=sys.stderr, flush=True)
            result = subprocess.run(
                cmd, cwd=MODULE_DIR, env=env, check=False, capture_output=quiet, text=True
            )
            if result.returncode != 0:
                detail = f": {result.stderr.strip()[-2000:]}" if quiet and result.stderr else ""
                raise DescriptorsError(f"`{' '.join(cmd)}` failed ({result.returncode}){detail}")
        # Atomic: a concurrent reader sees either no set or a whole one.
        output.replace(target)
    if not quiet:
        print(
            f"descriptor set built in {time.perf_counter() - started:.1f}s: {target}",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aimesh_policies.descriptors", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--print-path", action="store_true", help="print the set's path, build nothing"
    )
    mode.add_argument("--check", action="store_true", help="exit 1 when no set is available")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    if args.print_path or args.check:
        found = locate()
        print(found or default_path() or "")
        return 0 if found or args.print_path else 1
    if os.environ.get(ENV_SET):
        print(f"{ENV_SET} is set: using {os.environ[ENV_SET]}, building nothing", file=sys.stderr)
        return 0 if locate() else 1
    try:
        print(build(force=args.force))
    except DescriptorsError as exc:
        print(f"descriptors: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
