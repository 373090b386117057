"""Where the read-only reference data of a checkout lives: the ``shared/`` folder beside it.

Looked for beside the current directory's parent (``../shared`` from a checkout's root, as in CI) and
beside the source tree of an editable install. Installed elsewhere, there is none and callers fall back
to downloads or ask the user for a path.
"""

from __future__ import annotations

from pathlib import Path


def shared_path(*parts: str) -> Path | None:
    """``shared/<parts>`` beside this checkout when it exists, else None."""
    for base in (Path.cwd().parent, Path(__file__).resolve().parents[2].parent):
        candidate = base.joinpath("shared", *parts)
        if candidate.exists():
            return candidate
    return None
