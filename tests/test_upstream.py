"""The upstream schema cache: pinned files, `make schemas`, checks that never silently vanish."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from aimesh import versions
from tools import schemas, upstream
from tools.upstream import Part, PinnedFile

ROOT = Path(__file__).resolve().parent.parent
COMMIT_URL = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+$")

# Which versions.py constant each cached directory is the upstream of.
VERSION_OF = {
    "istio/": versions.ISTIO,
    "cert-manager/": versions.CERT_MANAGER,
    "kserve/": versions.KSERVE,
    "gateway-api/": versions.GATEWAY_API,
    "prometheus-operator/": versions.KUBE_PROMETHEUS_STACK,  # the chart's own CRD copies
    "kube-prometheus-stack/": versions.KUBE_PROMETHEUS_STACK,
    "opentelemetry-collector/": versions.OTEL_COLLECTOR_CHART,
    "istio-csr/": versions.ISTIO_CSR,
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the pinned list ----------------------------------------------------------------------------


def test_every_pin_is_a_commit_url_and_a_sha256() -> None:
    pins = upstream.pinned()
    assert len({p.path for p in pins}) == len(pins)
    for pin in pins:
        assert re.fullmatch(r"[0-9a-f]{64}", pin.sha256), pin.path
        urls = [pin.url] if not pin.parts else [part.url for part in pin.parts]
        assert bool(pin.url) != bool(pin.parts), pin.path
        for url in urls:
            assert COMMIT_URL.match(url), url
        for part in pin.parts:
            assert re.fullmatch(r"[0-9a-f]{64}", part.sha256), part.source


def test_pins_are_the_versions_the_program_deploys() -> None:
    for pin in upstream.pinned():
        prefix = next(p for p in VERSION_OF if pin.path.startswith(p))
        assert VERSION_OF[prefix] in pin.version, f"{pin.path}: {pin.version}"
    # Gateway API: exactly the version Istio and KServe build against, nothing else.
    gateway = {p.path.split("/")[1] for p in upstream.pinned() if p.path.startswith("gateway-api/")}
    assert gateway == {versions.GATEWAY_API}


def test_every_file_the_checks_read_is_pinned_and_every_pin_is_read() -> None:
    read = [*schemas.CRD_SOURCES, *schemas.CHART_VALUES.values(), *schemas.CHART_SCHEMAS.values()]
    pinned = [p.path for p in upstream.pinned()]
    for prefix in read:
        assert any(p == prefix or p.startswith(prefix.rstrip("/") + "/") for p in pinned), prefix
    for path in pinned:
        assert any(path == r or path.startswith(r.rstrip("/") + "/") for r in read), path


# ---- filling the cache --------------------------------------------------------------------------


def _pin(path: str, data: bytes) -> PinnedFile:
    return PinnedFile(path, "v1", _sha(data), url=f"https://example.invalid/{path}")


def test_fill_copies_intact_files_from_the_mirror_and_refuses_changed_ones(tmp_path: Path) -> None:
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    (mirror / "a").mkdir(parents=True)
    (mirror / "a" / "good.yaml").write_bytes(b"kind: A\n")
    (mirror / "a" / "bad.yaml").write_bytes(b"kind: tampered\n")
    pins = [_pin("a/good.yaml", b"kind: A\n"), _pin("a/bad.yaml", b"kind: B\n")]

    result = upstream.fill(cache, mirror=mirror, get=None, files=pins)

    assert result.copied == ["a/good.yaml"]
    assert set(result.failed) == {"a/bad.yaml"}
    assert (cache / "a" / "good.yaml").read_bytes() == b"kind: A\n"
    assert not (cache / "a" / "bad.yaml").exists()
    assert upstream.cache_problems(cache, pins) == ["a/bad.yaml: missing"]
    # A second run keeps what is there.
    again = upstream.fill(cache, mirror=mirror, get=None, files=pins[:1])
    assert again.kept == ["a/good.yaml"]


def test_fill_downloads_and_checks_what_the_mirror_lacks(tmp_path: Path) -> None:
    served = {"https://example.invalid/x.json": b"{}", "https://example.invalid/y.json": b"[1]"}
    pins = [_pin("x.json", b"{}"), _pin("y.json", b"[]")]  # y is served with other bytes
    result = upstream.fill(tmp_path, mirror=tmp_path / "absent", get=served.__getitem__, files=pins)
    assert result.downloaded == ["x.json"]
    assert "differs from the pin" in " ".join(result.failed["y.json"])
    assert not (tmp_path / "y.json").exists()


def test_fill_stops_downloading_after_the_network_fails(tmp_path: Path) -> None:
    calls: list[str] = []

    def offline(url: str) -> bytes:
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    pins = [_pin(f"f{i}.yaml", b"x") for i in range(5)]
    result = upstream.fill(tmp_path, mirror=None, get=offline, files=pins)
    assert len(calls) == 1
    assert len(result.failed) == 5
    assert all("network unreachable" in " ".join(r) for r in result.failed.values())


def test_download_refuses_plain_http() -> None:
    with pytest.raises(ValueError, match="non-https"):
        upstream.download("http://127.0.0.1:1/x")


@pytest.mark.usefixtures("upstream_available")
def test_concatenated_pins_assemble_the_pinned_file(tmp_path: Path) -> None:
    """Served the pinned upstream parts, fill() rebuilds exactly the pinned concatenation."""
    (pin,) = [p for p in upstream.pinned() if p.parts]
    whole = (upstream.CACHE / pin.path).read_bytes()
    pieces = re.split(rb"(?:^|\n---\n)# Source: [^\n]*\n", whole)[1:]
    pieces = [p + b"\n" for p in pieces[:-1]] + pieces[-1:]
    served = {part.url: piece for part, piece in zip(pin.parts, pieces, strict=True)}
    assert all(_sha(served[part.url]) == part.sha256 for part in pin.parts)

    result = upstream.fill(tmp_path, mirror=None, get=served.__getitem__, files=[pin])
    assert result.downloaded == [pin.path]
    assert (tmp_path / pin.path).read_bytes() == whole


def test_parts_that_do_not_match_are_refused(tmp_path: Path) -> None:
    part = Part("o/r@v1:a.yaml", "https://example.invalid/a.yaml", _sha(b"a\n"))
    pin = PinnedFile("c.yaml", "v1", _sha(b"# Source: o/r@v1:a.yaml\na\n"), parts=(part,))
    ok = upstream.fill(
        tmp_path / "ok", mirror=None, get={part.url: b"a\n"}.__getitem__, files=[pin]
    )
    assert ok.downloaded == ["c.yaml"]
    bad = upstream.fill(
        tmp_path / "bad", mirror=None, get={part.url: b"b\n"}.__getitem__, files=[pin]
    )
    assert bad.failed
    assert not (tmp_path / "bad" / "c.yaml").exists()


# ---- what a developer without the files sees ----------------------------------------------------


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in (upstream.ALLOW_MISSING_ENV, "PYTEST_ADDOPTS")
    }
    environment.update(
        {upstream.CACHE_ENV: str(tmp_path / "empty-cache"), upstream.MIRROR_ENV: str(tmp_path)}
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_fill_command_without_any_source_fails_and_says_what_to_do(tmp_path: Path) -> None:
    result = _run(["-m", "tools.upstream", "--offline"], tmp_path)
    assert result.returncode == 1
    assert f"{upstream.ALLOW_MISSING_ENV}=1 make test" in result.stderr
    allowed = _run(
        ["-m", "tools.upstream", "--offline"], tmp_path, **{upstream.ALLOW_MISSING_ENV: "1"}
    )
    assert allowed.returncode == 0
    assert "SKIPPED" in allowed.stderr


SCHEMA_TEST = "tests/unit/test_kserve.py::test_upstream_default_is_knative_so_the_override_matters"


def test_schema_tests_fail_with_the_command_when_the_cache_is_empty(tmp_path: Path) -> None:
    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", SCHEMA_TEST], tmp_path)
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout
    assert f"run `{upstream.FILL_COMMAND}`" in result.stdout


def test_opting_out_skips_them_and_the_summary_says_so(tmp_path: Path) -> None:
    result = _run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", SCHEMA_TEST],
        tmp_path,
        **{upstream.ALLOW_MISSING_ENV: "1"},
    )
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "schema checks SKIPPED" in result.stdout
