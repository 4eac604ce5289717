"""A small Kubernetes API client for the harness: JSON over HTTPS with a client certificate.

The harness only needs get/list/create/apply/delete and waits, so the standard library is enough
(no client library, no kubectl on the CI machine).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


@dataclass(frozen=True)
class Kube:
    """Talks to one API server as one client certificate."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Json:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (https only)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._context(), timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, method, path, err.read().decode(errors="replace")) from err
        if raw and not raw.lstrip().startswith(b"{"):
            # Health endpoints (/readyz, /livez) answer in plain text.
            return {"text": raw.decode(errors="replace")}
        parsed: Json = json.loads(raw) if raw else {}
        return parsed

    def get(self, path: str) -> Json | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def items(self, path: str) -> list[Json]:
        found: list[Json] = self.request("GET", path).get("items", [])
        return found

    def apply(self, path: str, obj: Json, *, manager: str = "aimesh-e2e") -> Json:
        """Server-side apply `obj` at its object path (create or update)."""
        return self.request(
            "PATCH",
            path,
            obj,
            content_type="application/apply-patch+yaml",
            query={"fieldManager": manager, "force": "true"},
        )

    def delete(self, path: str) -> None:
        try:
            self.request("DELETE", path, {"propagationPolicy": "Background"})
        except ApiError as err:
            if err.status != 404:
                raise

    def discovery(self) -> Iterator[tuple[str, Json]]:
        """Every served (group-version, resource) pair that can be listed."""
        core = self.request("GET", "/api/v1")
        for res in core.get("resources", []):
            yield "v1", res
        for group in self.request("GET", "/apis").get("groups", []):
            gv = group["preferredVersion"]["groupVersion"]
            try:
                listing = self.request("GET", f"/apis/{gv}")
            except ApiError:
                continue
            for res in listing.get("resources", []):
                yield gv, res


def object_path(api_version: str, plural: str, name: str = "", namespace: str = "") -> str:
    """REST path of a resource (collection when `name` is empty)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def wait_for(
    what: str, check: Callable[[], bool], *, timeout: float = 120, interval: float = 0.5
) -> float:
    """Poll `check` until it is true; return the seconds it took; raise naming `what`."""
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ApiError) as err:  # not up yet: connection refused, 404, 503
            last = err
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else "")
    )
