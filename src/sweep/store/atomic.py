"""One way to replace a file so that readers see the old one or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Replace `path` with what `write` puts in a file: a temporary file beside it, fsynced, renamed
    over it. If anything fails (a full disk), the temporary file is removed and `path` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
