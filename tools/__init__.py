"""Developer tools, run from the repository root as `python -m tools.<name>`.

They need the project's virtualenv (`.venv`, built by `make ensure`). Started by another
interpreter (a bare `python -m tools.check` outside the virtualenv), they re-run themselves with
`.venv/bin/python`, or, when it does not exist yet, say how to create it instead of failing on a
missing module.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_VENV = _ROOT / ".venv"


def _use_the_project_virtualenv() -> None:
    # Only for `python -m tools.<name>`: while the package of a -m module is imported, argv[0]
    # is "-m". An import from tests or another tool is left alone.
    if sys.argv[:1] != ["-m"] or find_spec("pulumi") is not None:
        return
    python = _VENV / "bin" / "python"
    in_venv = Path(sys.prefix).resolve() == _VENV.resolve()
    if python.exists() and not in_venv:
        os.execv(python, [str(python), *sys.orig_argv[1:]])  # noqa: S606 - same command, .venv
    command = "python " + " ".join(sys.orig_argv[1:])
    sys.exit(
        f"`{command}` needs the project's virtualenv "
        f"({'it is incomplete' if in_venv else 'none at ' + str(_VENV)}): run `make ensure`, "
        f"then `{command}` again"
    )


_use_the_project_virtualenv()
