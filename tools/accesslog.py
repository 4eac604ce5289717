"""Reading aimesh's access logs: a stream of records from files, gzip files or stdin.

Two forms of the same record (builders/telemetry.py `ACCESS_LOG_FIELDS`):

- the JSON lines every Envoy writes to stdout (`kubectl logs ... -c istio-proxy`), one flat
  object per request, and
- the OpenTelemetry collector's `file` sink (OTLP/JSON, one `{"resourceLogs": [...]}` batch per
  line), whose log records carry the same fields as attributes.

Reading is streaming and bounded: one line at a time, at most `MAX_LINE` bytes each (a longer
line is skipped to its end and counted as malformed), gzip detected by its magic bytes (so `-`
may be gzip too). A line that is not a record is counted and remembered as `file:line: why`
(the first `MAX_EXAMPLES`), never raised; a file that cannot be opened or read on is reported
with its name (and the line it broke at) and the next file is read.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 1 << 20  # 1 MiB: far above any access-log record, far below "a whole file"
MAX_EXAMPLES = 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ReadStats:
    """What the reader saw; `malformed` lines are counted, the first few kept as examples."""

    files: int = 0
    lines: int = 0
    blank: int = 0
    records: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be (fully) read

    def bad(self, where: str, why: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {why}")


@dataclass(frozen=True)
class Located:
    """A record and where it came from (`file:line`)."""

    record: Mapping[str, Any]
    where: str


def _open(name: str) -> tuple[io.BufferedIOBase, str]:
    """A binary stream of `name` (`-` = stdin), transparently gunzipped."""
    label = "<stdin>" if name == "-" else name
    raw: Any = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    reader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if reader.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=reader, mode="rb"), label
    return reader, label


def _lines(stream: io.BufferedIOBase, label: str, stats: ReadStats) -> Iterator[tuple[int, bytes]]:
    number = 0
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            # Skip the rest of an over-long line without holding it.
            while True:
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
            stats.lines += 1
            stats.bad(f"{label}:{number}", f"line longer than {MAX_LINE} bytes")
            continue
        yield number, line


def _otlp_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a plain value (ints arrive as strings in OTLP/JSON)."""
    if not isinstance(value, Mapping):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    return None


def _otlp_records(batch: Mapping[str, Any]) -> Iterator[dict[str, Any]] | None:
    """The records of one OTLP/JSON logs batch, or None when it is not shaped like one."""
    resource_logs = batch.get("resourceLogs")
    if not isinstance(resource_logs, list):
        return None
    out: list[dict[str, Any]] = []
    for resource in resource_logs:
        scopes = resource.get("scopeLogs") if isinstance(resource, Mapping) else None
        for scope in scopes if isinstance(scopes, list) else []:
            entries = scope.get("logRecords") if isinstance(scope, Mapping) else None
            for entry in entries if isinstance(entries, list) else []:
                attributes = entry.get("attributes") if isinstance(entry, Mapping) else None
                if not isinstance(attributes, list):
                    continue
                out.append(
                    {
                        str(a["key"]): _otlp_value(a.get("value"))
                        for a in attributes
                        if isinstance(a, Mapping) and "key" in a
                    }
                )
    return iter(out)


def read(names: Sequence[str], stats: ReadStats) -> Iterator[Located]:
    """Every record of every file in `names`, in order; problems go to `stats`."""
    for name in names:
        stats.files += 1
        try:
            stream, label = _open(name)
        except OSError as exc:
            stats.errors.append(f"{name}: cannot open: {exc.strerror or exc}")
            continue
        number = 0
        try:
            for number, line in _lines(stream, label, stats):
                stats.lines += 1
                text = line.strip()
                if not text:
                    stats.blank += 1
                    continue
                where = f"{label}:{number}"
                try:
                    value = json.loads(text.decode())
                except ValueError:  # includes invalid UTF-8
                    stats.bad(where, "not JSON (is this an aimesh access log?)")
                    continue
                if not isinstance(value, dict):
                    stats.bad(where, f"a JSON {type(value).__name__}, not an access-log record")
                    continue
                batch = _otlp_records(value) if "resourceLogs" in value else None
                if "resourceLogs" in value and batch is None:
                    stats.bad(where, "resourceLogs is not an OTLP/JSON logs batch")
                    continue
                for record in batch if batch is not None else iter((value,)):
                    stats.records += 1
                    yield Located(record, where)
        except (OSError, EOFError, zlib.error) as exc:
            stats.errors.append(f"{label}:{number + 1}: cannot read on: {exc}")
        finally:
            if name != "-":
                stream.close()
