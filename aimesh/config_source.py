"""Where a stack setting was written: the file and line an error about it should point to.

`settings.py` validates the config the engine hands over; it cannot see the file. This module
finds the setting again in `Pulumi.<stack>.yaml` (or, for a project default, `Pulumi.yaml`),
so that every error reads `Pulumi.dev.yaml:12: aimesh:models[0].callers[1].role: ...`. It also
decides how a value the user gave is shown: secrets never.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = Sequence[int | str]
SECRET_SHOWN = "[secret]"  # noqa: S105 - what is shown instead of a secret
_MAX_SHOWN = 60


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a misspelt `word` most likely meant, if one is close enough."""
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass(frozen=True)
class ConfigSource:
    """The files a stack's config comes from, and which of its keys are secrets."""

    stack_file: Path
    project_file: Path | None = None
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    stack: str = ""  # for the commands an error suggests (`pulumi config set --stack ...`)

    @classmethod
    def for_stack(cls, root: Path, stack: str, secret_keys: Iterable[str] = ()) -> ConfigSource:
        return cls(
            root / f"Pulumi.{stack}.yaml", root / "Pulumi.yaml", frozenset(secret_keys), stack
        )

    def where(self, key: str, path: Loc = ()) -> str:
        """`Pulumi.dev.yaml:12` for the full key `key` (`aimesh:models`) and the path below it;
        the line of the deepest part that exists. The stack file unless only the project file
        sets the key. Paths are shown as the user would type them (relative when possible)."""
        line = _line(self.stack_file, ["config", key, *path])
        if line is None and self.project_file is not None:
            project_line = _line(self.project_file, ["config", key.partition(":")[2], "default"])
            if project_line is not None:
                return f"{_shown_path(self.project_file)}:{project_line}"
        shown = _shown_path(self.stack_file)
        return f"{shown}:{line}" if line is not None else shown

    def shown(self, key: str, value: Any, *, secret: bool = False) -> str:
        """A given value as an error shows it: JSON, shortened; secrets as `[secret]`."""
        if secret or key in self.secret_keys:
            return SECRET_SHOWN
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
        return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _line(path: Path, parts: Sequence[int | str]) -> int | None:
    """1-based line of the node at `parts` in a YAML file (of the deepest part found below the
    first one), or None when the file or its first part is absent."""
    try:
        node = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    found: int | None = None
    for depth, part in enumerate(parts):
        child = _child(node, part)
        if child is None:
            break
        key_node, node = child
        if depth > 0:
            found = key_node.start_mark.line + 1
    return found


def _child(node: Any, part: int | str) -> tuple[Any, Any] | None:
    """(the node to point at, the node to descend into) for one path part."""
    if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
        if 0 <= part < len(node.value):
            item = node.value[part]
            return item, item
        return None
    if isinstance(part, str) and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key, value
    return None
