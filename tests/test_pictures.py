"""Pictures: the architecture diagram and the access graphs are well-formed Mermaid, and the
graphs say exactly what the access rows (and so the AuthorizationPolicies) say.

No Mermaid parser runs offline (mermaid.js needs a browser DOM), so `flowchart_problems` checks
the subset of flowchart syntax these diagrams use: every line is a declaration, an edge chain or
a subgraph bracket; labels are quoted without raw quotes; brackets balance; every node an edge
names is declared.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from aimesh.builders import access
from aimesh.builders.gateway import reference
from tools import access_matrix, offline
from tools.check import render_access_matrix

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"

_LABEL = r'"[^"\n]*"'
_SHAPE = "|".join(
    rf"{o}{_LABEL}{c}"
    for o, c in (
        (r"\[\(", r"\)\]"),
        (r"\(\[", r"\]\)"),
        (r"\{\{", r"\}\}"),
        (r"\[", r"\]"),
        (r"\(", r"\)"),
    )
)
_NODE = rf"([A-Za-z_][A-Za-z0-9_]*)((?:{_SHAPE})?)"
_EDGE = rf"(?:-->|==>|-\.->|~~~)(?:\|{_LABEL}\|)?|-- {_LABEL} -->|-\. {_LABEL} \.->|== {_LABEL} ==>"
_CHAIN = re.compile(rf"^{_NODE}(?:\s*(?:{_EDGE})\s*{_NODE})*$")
_SUBGRAPH = re.compile(rf"^subgraph ([A-Za-z_][A-Za-z0-9_]*)\[{_LABEL}\]$")


def flowchart_problems(text: str) -> list[str]:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"flowchart (LR|TD|TB|RL|BT)", lines[0]):
        return ["does not start with `flowchart <direction>`"]
    problems: list[str] = []
    declared: set[str] = set()
    used: set[str] = set()
    depth = 0
    for line in lines[1:]:
        if line == "end":
            depth -= 1
            if depth < 0:
                problems.append("`end` without `subgraph`")
            continue
        subgraph = _SUBGRAPH.match(line)
        if subgraph:
            depth += 1
            declared.add(subgraph.group(1))
            continue
        if not _CHAIN.match(line):
            problems.append(f"not a declaration or edge: {line}")
            continue
        for node, shape in re.findall(_NODE, re.sub(_LABEL, '""', line)):
            (declared if shape else used).add(node)
    if depth:
        problems.append("unbalanced subgraph/end")
    problems += [f"edge names undeclared node {n}" for n in sorted(used - declared)]
    return problems


def _mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", markdown, flags=re.S)


def test_the_checker_can_fail() -> None:
    assert flowchart_problems('flowchart LR\n  a["A"] --> b\n') == ["edge names undeclared node b"]
    assert flowchart_problems('flowchart LR\n  subgraph s["S"]\n  a["x "y""]\n') != []
    assert flowchart_problems("graph\n") != []


def test_architecture_diagram_shows_components_paths_and_trust_boundaries() -> None:
    (diagram,) = _mermaid_blocks(ARCHITECTURE.read_text())
    assert flowchart_problems(diagram) == []
    assert diagram.count("subgraph ") >= 4  # trust boundaries
    assert re.search(r"-- .* -->", diagram)  # data paths
    assert re.search(r"-\. .* \.->", diagram)  # control paths
    for component in ("istiod", "cert-manager", "KServe", "gateway", "Policy pack", "SIEM"):
        assert component.lower() in diagram.lower(), component


@pytest.mark.parametrize("stack", offline.stacks())
def test_access_graph_has_one_arrow_per_grant(stack: str) -> None:
    settings = access_matrix.load(stack)
    graph = access_matrix.mermaid(settings)
    assert flowchart_problems(graph) == []
    gateway = reference(settings)
    rows = [r for m in settings.models for r in access.rows(settings, m, gateway)]
    grants = [line for line in graph.splitlines() if re.search(r"\|\"[^\"]*\"\| m_", line)]
    assert len(grants) == len(rows)
    for row in rows:
        assert any(row.role in line for line in grants)
    windows = [r for r in rows if r.windows]
    assert sum("-.->" in line for line in grants) == len(windows)


def test_the_docs_graphs_are_the_generated_ones() -> None:
    document = (ROOT / "docs" / "access-matrix.md").read_text()
    blocks = _mermaid_blocks(document)
    assert blocks == [access_matrix.mermaid(access_matrix.load(s)) for s in offline.stacks()]
    makefile = (ROOT / "Makefile").read_text()
    assert "tools.access_matrix --all-stacks --output docs/access-matrix.md" in makefile


def test_mermaid_format_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert access_matrix.main(["--stack", "dev", "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR\n")


def test_tool_tables_wrap_instead_of_cutting_words() -> None:
    window = "opens `0 1 * * *`, closes `0 3 * * *` (Europe/Berlin)"
    rows: list[dict[str, str | None]] = [
        {
            "model": "fraud-detector",
            "role": "invoke",
            "caller": "batch/nightly-scoring",
            "rateLimit": None,
            "when": window,
        },
        {
            "model": "churn-scorer",
            "role": "invoke",
            "caller": "integration:partner-acme",
            "rateLimit": "100/minute",
            "when": "always",
        },
    ]
    cells = [str(v) for row in rows for v in row.values() if v is not None]
    table = render_access_matrix(rows, width=100)
    assert max(len(line) for line in table.splitlines()) <= 100
    words = table.split()
    for token in " ".join(cells).split():
        assert token in words, token  # whole, on one line
    # Too narrow for the words: they are folded, but not one character is lost.
    narrow = render_access_matrix(rows, width=40)
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert Counter("".join(narrow.split())) >= Counter("".join("".join(cells).split()))
