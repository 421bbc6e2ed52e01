"""Claims: several runners on one store (one machine, or many sharing a filesystem) take different
runs, and a runner that lost its claim writes nothing more to the run.

A runner claims a run by creating `<run>/claim.json` atomically: the claim is written in full to a
private temporary file, then hard-linked to its final name, which fails if the name exists (link is
atomic on local filesystems and NFS). The claim names its holder: the machine, the pid and that
process's start time, and a random token. Its heartbeat is the file's modification time, which a
thread touches while the run trains; the content never changes.

A claim is stale, and is taken over, when its holder is gone or cannot be:
- on the same machine (same boot and pid namespace, so its pids mean the same processes), when no
  process with that pid and start time exists (a pid reused by another process does not count);
- on another machine, when its heartbeat is older than `stale_after_s()`;
- always, when the claim cannot be read, names an impossible holder, or beats from the future.
Takeover renames the stale claim away first; rename is atomic, so of several runners racing for it
exactly one succeeds.

Fencing: the holder checks its token before every write to the run's files (`Claim.check`) and
before every heartbeat. A runner that was paused past the stale time and taken over finds the
taker's token at its next write or heartbeat, stops the run and writes nothing more to it. (A pause
falling between a check and the write it guards can still let that one write through.)
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

CLAIM = "claim.json"
STALE_AFTER_S = 120.0  # default: eight missed heartbeats; SWEEP_CLAIM_STALE_S sets it (tests use seconds)
HEARTBEAT_S = 15.0


def stale_after_s() -> float:
    """How long a claim from another machine may go without a heartbeat before it is taken over."""
    return float(os.environ.get("SWEEP_CLAIM_STALE_S", STALE_AFTER_S))


def heartbeat_s() -> float:
    return min(HEARTBEAT_S, stale_after_s() / 8)


class ClaimLost(Exception):
    """Another runner took this runner's claim over: the run must stop, writing nothing more."""


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def machine() -> str:
    """Which processes a pid names: this boot of this machine, in this pid namespace. Hostnames are not
    enough (containers and UTS namespaces share them or change them); a reboot reuses pids."""
    boot = _read_text("/proc/sys/kernel/random/boot_id") or socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{boot}/{namespace}"


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), None if there is
    no such process. Where /proc is missing, 0 for any live process."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is not None:
        return int(stat.rsplit(")", 1)[1].split()[19])  # fields after the command name start at field 3
    if os.path.isdir("/proc/self"):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


def holder() -> dict:
    """This process as a claim names it."""
    pid = os.getpid()
    return {"machine": machine(), "pid": pid, "start": start_time(pid), "host": socket.gethostname()}


def _read(path: Path) -> dict | None:
    """The claim in `path` if it names a possible holder, else None."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict):
        return None
    valid = (
        isinstance(content.get("machine"), str)
        and isinstance(content.get("token"), str)
        and type(content.get("pid")) is int
        and content["pid"] > 0
        and type(content.get("start")) is int
        and content["start"] >= 0
    )
    return content if valid else None


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether the claim at `path` may be taken over (see the module's docstring)."""
    now = time.time() if now is None else now
    content = _read(path)
    try:
        heartbeat = path.stat().st_mtime
    except FileNotFoundError:
        return True
    if content is None or heartbeat > now + stale_after_s():
        return True
    if content["machine"] == machine():
        return start_time(content["pid"]) != content["start"]
    return now - heartbeat > stale_after_s()


def describe(path: Path) -> str:
    """Who holds the claim at `path`, for messages."""
    content = _read(path)
    return f"pid {content['pid']} on {content.get('host', '?')}" if content else "an unreadable claim"


class Claim:
    """A held claim on one run's directory; `release()` (or leaving the `with` block) gives it up."""

    def __init__(self, directory: Path):
        self.path = directory / CLAIM
        self.token = secrets.token_hex(16)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def content(self) -> dict:
        return {**holder(), "token": self.token}

    def holds(self) -> bool:
        content = _read(self.path)
        return content is not None and content["token"] == self.token

    def check(self) -> None:
        """Raise ClaimLost unless this runner still holds the claim. Called before every write."""
        if self.lost.is_set() or not self.holds():
            self.lost.set()
            raise ClaimLost(f"{self.path.parent.name}: taken over by {describe(self.path)}")

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            if not self.holds():
                self.lost.set()
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.holds():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _write_new(path: Path, content: dict) -> bool:
    """Create `path` holding `content`, atomically, only if it does not exist."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(content))
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def try_claim(directory: Path) -> Claim | None:
    """The run's claim if this process got it, None if a live runner holds it."""
    claim = Claim(directory)
    for _ in range(3):
        if _write_new(claim.path, claim.content()):
            claim._thread.start()
            return claim
        seen = claim.path.read_bytes() if claim.path.exists() else None
        if not is_stale(claim.path):
            return None
        graveyard = directory / f".claim.stale.{claim.token}"
        try:
            os.rename(claim.path, graveyard)  # only one of several racing runners gets it
        except FileNotFoundError:
            continue  # another runner moved it first; try to create ours again
        if graveyard.read_bytes() != seen or not is_stale(graveyard):
            # Between our look and our rename another runner took the stale claim over, or its
            # holder beat: we moved a live claim. Put it back and leave the run to that runner.
            try:
                os.link(graveyard, claim.path)
            except FileExistsError:
                pass
            graveyard.unlink(missing_ok=True)
            return None
        graveyard.unlink(missing_ok=True)
    return None
