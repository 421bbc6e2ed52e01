"""Classical compressors, the baselines a language model's code length on the same bytes is held to.

Each compressor writes what its command line writes, container included, since that is the file
a user would keep: `gzip -9` (gzip header and CRC-32 trailer), `xz -9` (.xz stream with its CRC-64
check), `zstd -19` (zstd frame with its checksum). The header costs a few dozen bytes, which is
nothing on a corpus but lifts incompressible input slightly above 8 bits per byte. gzip and xz come
with the standard library; zstd comes from the `zstandard` package if it is importable, otherwise
from a `zstd` executable on PATH, and is reported as "not installed" when there is neither. Its name
carries the library's version: level 19 of libzstd 1.5.7 (zstandard 0.25) wrote 26% fewer bytes than
the zstd 1.5.4 executable on the same 117 kB of digits, so the figure is the version's, not zstd's.
"""

from __future__ import annotations

import gzip
import importlib
import lzma
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ZSTD = "zstd -19"
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class Compressor:
    """A command line's compression as a function, or None with the reason it is unavailable."""

    name: str  # the command line it reproduces: "gzip -9"
    compress: Callable[[bytes], bytes] | None
    reason: str | None = None


@dataclass(frozen=True)
class Compressed:
    """One compressor's output size on some bytes; bits and bpb are None when it is unavailable."""

    name: str
    bits: int | None  # 8 × compressed length in bytes, container included
    bpb: float | None  # bits per input byte
    reason: str | None = None


def gzip_9(data: bytes) -> bytes:
    # zlib's DEFLATE at level 9 in the gzip container (10-byte header, 8-byte trailer): `gzip -9 < file`,
    # which stores no file name, to within the few bytes by which zlib's and GNU gzip's matches differ.
    # mtime=0 keeps the output the same from one call to the next.
    return gzip.compress(data, compresslevel=9, mtime=0)


def xz_9(data: bytes) -> bytes:
    # Preset 9 without PRESET_EXTREME is `xz -9` (`xz -9e` would add it): one .xz stream, CRC-64 check.
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)


def find_zstd(
    import_module: Callable[[str], object] = importlib.import_module,
    which: Callable[[str], str | None] = shutil.which,
) -> Compressor:
    """zstd level 19 from the `zstandard` package, else from a `zstd` executable, else unavailable."""
    try:
        zstandard = import_module("zstandard")
    except ImportError:
        executable = which("zstd")
        if executable is None:
            return Compressor(ZSTD, None, NOT_INSTALLED)
        version = _executable_version(executable)
        return Compressor(f"{ZSTD} ({version})", lambda data: _zstd_executable(executable, data))
    # The CLI writes a 4-byte checksum by default; the package does only when asked.
    version = ".".join(map(str, getattr(zstandard, "ZSTD_VERSION", ()))) or "unknown version"
    return Compressor(f"{ZSTD} (libzstd {version})", zstandard.ZstdCompressor(level=19, write_checksum=True).compress)


def _executable_version(executable: str) -> str:
    """'zstd v1.5.4', from the banner `zstd --version` prints."""
    banner = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v\d+\.\d+\.\d+", banner)
    return f"zstd {found[0]}" if found else "zstd, unknown version"


def _zstd_executable(executable: str, data: bytes) -> bytes:
    # Read from stdin, zstd may not know the content size it puts in the frame header for a file: at
    # most 8 bytes off `zstd -19 file`. A failing executable raises CalledProcessError, not a None.
    return subprocess.run([executable, "-19", "-c", "-q"], input=data, capture_output=True, check=True).stdout


def default_compressors() -> tuple[Compressor, ...]:
    return (Compressor("gzip -9", gzip_9), Compressor("xz -9", xz_9), find_zstd())


def compressed_bits(data: bytes, compressors: Sequence[Compressor] | None = None) -> list[Compressed]:
    """Each compressor's size on `data` in bits, and in bits per byte (8 × compressed / raw length)."""
    if not data:
        raise ValueError("no bytes to compress: bits per byte is undefined")
    results = []
    for compressor in default_compressors() if compressors is None else compressors:
        if compressor.compress is None:
            results.append(Compressed(compressor.name, None, None, compressor.reason))
            continue
        bits = 8 * len(compressor.compress(data))
        results.append(Compressed(compressor.name, bits, bits / len(data)))
    return results
