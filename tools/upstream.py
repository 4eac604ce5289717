"""Fill the upstream schema cache the strict checks read: `make schemas`.

    python -m tools.upstream [--mirror DIR] [--offline] [--check]

`tools/upstream-files.toml` pins every upstream file the schema checks need (CRDs and Helm
chart values of the versions in aimesh/versions.py): its URL at the release commit and its
sha256. This command puts each one into `.cache/upstream/` ($AIMESH_SCHEMA_CACHE), taking it
from the first source that has the pinned bytes:

1. the cache itself (already there and intact: nothing to do);
2. a local mirror directory laid out like the cache: `--mirror`, else $AIMESH_UPSTREAM_MIRROR,
   else `../shared/upstream` beside the checkout when it exists;
3. the pinned URL (unless `--offline`); after the first network failure no further download is
   tried, so a machine without internet fails in seconds, not minutes.

A file whose sha256 differs from the pin is never written. Exit status 0 when the cache is
complete; 1 otherwise, with what is missing and how to get it. Because the schema tests FAIL
without the cache, a developer who cannot get the files opts out explicitly with
AIMESH_ALLOW_MISSING_SCHEMAS=1: this command then exits 0 with a warning, and the tests skip
(the pytest summary says so).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED_LIST = Path(__file__).resolve().with_name("upstream-files.toml")
CACHE_ENV = "AIMESH_SCHEMA_CACHE"
# In the checkout (git-ignored); a developer with several checkouts may share one elsewhere.
CACHE = Path(os.environ.get(CACHE_ENV) or ROOT / ".cache" / "upstream")
MIRROR_ENV = "AIMESH_UPSTREAM_MIRROR"
ALLOW_MISSING_ENV = "AIMESH_ALLOW_MISSING_SCHEMAS"
FILL_COMMAND = "make schemas"
DOWNLOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class Part:
    """One upstream file of a concatenated cache file."""

    source: str
    url: str
    sha256: str


@dataclass(frozen=True)
class PinnedFile:
    """One cache file: its path under the cache, its upstream version, URL and sha256."""

    path: str
    version: str
    sha256: str
    url: str = ""
    parts: tuple[Part, ...] = ()


@cache
def pinned(list_file: Path = PINNED_LIST) -> tuple[PinnedFile, ...]:
    """Every pinned file, in the order of the list."""
    data = tomllib.loads(list_file.read_text())
    return tuple(
        PinnedFile(
            path=entry["path"],
            version=entry["version"],
            sha256=entry["sha256"],
            url=entry.get("url", ""),
            parts=tuple(Part(**part) for part in entry.get("parts", ())),
        )
        for entry in data["file"]
    )


def missing_allowed() -> bool:
    """The developer opted out of the schema checks for a machine without the files."""
    return os.environ.get(ALLOW_MISSING_ENV, "") not in ("", "0", "false", "no")


def default_mirror() -> Path | None:
    configured = os.environ.get(MIRROR_ENV)
    if configured:
        return Path(configured)
    beside = ROOT.parent / "shared" / "upstream"
    return beside if beside.is_dir() else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _intact(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path.read_bytes()) == sha256


def cache_problems(cache_dir: Path = CACHE, files: Sequence[PinnedFile] | None = None) -> list[str]:
    """Cache files that are absent or differ from their pin (`[]`: the cache is complete)."""
    problems = []
    for pin in pinned() if files is None else files:
        path = cache_dir / pin.path
        if not path.is_file():
            problems.append(f"{pin.path}: missing")
        elif not _intact(path, pin.sha256):
            problems.append(f"{pin.path}: sha256 differs from the pin")
    return problems


def missing_message(problems: Sequence[str], cache_dir: Path = CACHE) -> str:
    """One line: what is wrong with the cache and the command that fixes it."""
    total = len(pinned())
    return (
        f"upstream schemas missing from {cache_dir} ({len(problems)} of {total} files, "
        f"first: {problems[0]}): run `{FILL_COMMAND}` (copies them from a mirror directory, "
        f"${MIRROR_ENV} or ../shared/upstream, or downloads the pinned URLs); "
        f"{ALLOW_MISSING_ENV}=1 skips these checks instead"
    )


Download = Callable[[str], bytes]


def download(url: str) -> bytes:
    if not url.startswith("https://"):
        raise ValueError(f"refusing a non-https URL: {url}")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310
        body: bytes = response.read()
        return body


class _NetworkDownError(Exception):
    """The network is unreachable: no further download is tried."""


def _fetch(pin: PinnedFile, get: Download) -> bytes:
    """The pinned file's bytes from its URL(s), checked part by part and as a whole."""

    def one(url: str, sha256: str) -> bytes:
        try:
            data = get(url)
        except urllib.error.HTTPError as exc:  # the server answered: not a network outage
            raise ValueError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _NetworkDownError(str(getattr(exc, "reason", exc))) from None
        if _sha256(data) != sha256:
            raise ValueError(f"{url}: sha256 {_sha256(data)} differs from the pin {sha256}")
        return data

    if not pin.parts:
        return one(pin.url, pin.sha256)
    data = b"".join(
        (b"---\n" if index else b"")
        + f"# Source: {part.source}\n".encode()
        + one(part.url, part.sha256)
        for index, part in enumerate(pin.parts)
    )
    if _sha256(data) != pin.sha256:
        raise ValueError(f"{pin.path}: the assembled parts differ from the pinned sha256")
    return data


@dataclass
class FillResult:
    kept: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    # path -> why each source failed; files failing for the same reasons are reported together
    failed: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def fill(
    cache_dir: Path = CACHE,
    *,
    mirror: Path | None = None,
    get: Download | None = download,
    files: Sequence[PinnedFile] | None = None,
) -> FillResult:
    """Put every pinned file into `cache_dir` from the cache, `mirror` or `get` (None: no
    download). Only bytes with the pinned sha256 are ever written."""
    result = FillResult()
    network_down = ""
    for pin in pinned() if files is None else files:
        target = cache_dir / pin.path
        if _intact(target, pin.sha256):
            result.kept.append(pin.path)
            continue
        reasons = []
        if mirror is not None:
            source = mirror / pin.path
            if _intact(source, pin.sha256):
                _write(target, source.read_bytes())
                result.copied.append(pin.path)
                continue
            if not mirror.is_dir():
                reasons.append(f"no mirror directory {mirror}")
            elif not source.is_file():
                reasons.append(f"not in the mirror {mirror}")
            else:
                reasons.append(f"the copy in the mirror {mirror} differs from the pinned sha256")
        if get is None:
            reasons.append("downloads disabled (--offline)")
        elif network_down:
            reasons.append(f"network unreachable ({network_down})")
        else:
            try:
                _write(target, _fetch(pin, get))
                result.downloaded.append(pin.path)
                continue
            except _NetworkDownError as exc:
                network_down = str(exc)
                reasons.append(f"network unreachable ({network_down})")
            except ValueError as exc:
                reasons.append(str(exc))
        result.failed[pin.path] = tuple(reasons)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.upstream", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        help=f"directory laid out like the cache (default: ${MIRROR_ENV}, else ../shared/upstream)",
    )
    parser.add_argument("--offline", action="store_true", help="never download")
    parser.add_argument(
        "--check", action="store_true", help="only verify the cache; exit 1 if incomplete"
    )
    args = parser.parse_args(argv)

    if args.check:
        problems = cache_problems()
        if problems:
            print(missing_message(problems), file=sys.stderr)
            return 1
        print(f"{CACHE}: all {len(pinned())} pinned upstream files present, sha256 verified")
        return 0

    mirror = args.mirror or default_mirror()
    result = fill(CACHE, mirror=mirror, get=None if args.offline else download)
    print(
        f"upstream schemas in {CACHE}: {len(result.kept)} already there, "
        f"{len(result.copied)} copied from {mirror or 'no mirror'}, "
        f"{len(result.downloaded)} downloaded, "
        f"{len(result.failed)} missing"
    )
    if not result.failed:
        return 0
    print(f"could not obtain {len(result.failed)} pinned file(s):", file=sys.stderr)
    by_reasons: dict[tuple[str, ...], list[str]] = {}
    for path, reasons in result.failed.items():
        by_reasons.setdefault(reasons, []).append(path)
    for reasons, paths in by_reasons.items():
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        print(f"  {shown}: {'; '.join(reasons)}", file=sys.stderr)
    print(
        "Fix: point --mirror (or $AIMESH_UPSTREAM_MIRROR) at a directory holding these files, "
        "or run where https://raw.githubusercontent.com is reachable.",
        file=sys.stderr,
    )
    if missing_allowed():
        print(
            f"{ALLOW_MISSING_ENV}=1: continuing; the schema checks will be SKIPPED.",
            file=sys.stderr,
        )
        return 0
    print(
        f"To run the tests without the schema checks: {ALLOW_MISSING_ENV}=1 make test",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
