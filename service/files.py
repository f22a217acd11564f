"""Files the service rewrites whole (its key file, its jobs' state), written so that a crash never halves one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, content: str, *, mode: int = 0o644) -> None:
    """Write `content` to a new file beside `path`, flushed to disk, then rename it over `path`: a reader
    or a crash sees the old file or the new one, never part of one. `mode` applies from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
