"""Claims: several `sweep run` processes on one store (one machine or a shared filesystem) take
different runs.

A runner claims a run by creating `<run>/claim.json` atomically: the claim is written in full to a
private temporary file, then hard-linked to its final name, which fails if the name exists (link is
atomic on local filesystems and NFS). A heartbeat thread rewrites the claim while the run trains.
A claim is taken over when its owner is gone: on the same host, its process no longer exists; on
another host, its heartbeat is older than `STALE_AFTER_S`. Takeover renames the stale claim away
first; rename is atomic, so of several runners racing for it exactly one succeeds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

CLAIM = "claim.json"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0  # eight missed heartbeats: only for claims from other hosts


def _identity() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _write_new(path: Path, content: dict) -> bool:
    """Create `path` holding `content`, atomically, only if it does not exist."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(content))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(holder: dict | None, path: Path, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if holder is None:  # unreadable: judge by the file's age
        try:
            return now - path.stat().st_mtime > STALE_AFTER_S
        except FileNotFoundError:
            return True
    if holder.get("host") == socket.gethostname():
        return not _process_exists(int(holder.get("pid", -1)))
    return now - float(holder.get("heartbeat", 0)) > STALE_AFTER_S


class Claim:
    """A held claim on one run directory; `release()` (or leaving the `with` block) gives it up."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / CLAIM
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _content(self) -> dict:
        return {**_identity(), "heartbeat": time.time()}

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            tmp = self.path.with_name(f".{CLAIM}.{os.getpid()}.beat.tmp")
            tmp.write_text(json.dumps(self._content()))
            os.replace(tmp, self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        holder = _read(self.path)
        if holder is not None and {k: holder.get(k) for k in ("host", "pid")} == _identity():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(run_dir: Path) -> Claim | None:
    """The run's claim if this process got it, None if a live runner holds it."""
    claim = Claim(run_dir)
    for _ in range(3):
        if _write_new(claim.path, claim._content()):
            claim._thread.start()
            return claim
        holder = _read(claim.path)
        if not is_stale(holder, claim.path):
            return None
        graveyard = run_dir / f".claim.stale.{socket.gethostname()}.{os.getpid()}"
        try:
            os.rename(claim.path, graveyard)  # only one of several racing runners gets it
        except FileNotFoundError:
            continue  # another runner moved it first; try to create ours again
        moved = _read(graveyard)
        if moved != holder and not is_stale(moved, graveyard):
            # Between our read and our rename another runner took the stale claim over and wrote
            # its own: we moved a live claim. Put it back and leave the run to that runner.
            try:
                os.link(graveyard, claim.path)
            except FileExistsError:
                pass
            graveyard.unlink(missing_ok=True)
            return None
        graveyard.unlink(missing_ok=True)
    return None
