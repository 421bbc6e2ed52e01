"""A language model as a compressor: classical compressors' bits per byte, and the two-part and
prequential description lengths of runs, checked against hand-computed numbers and a known law."""

import math
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sweep.codelength.compressors import NOT_INSTALLED, compressed_bits, default_compressors, find_zstd
from sweep.codelength.frontier import (
    best_codes,
    compression_table,
    description_lengths,
    frontier,
    plot_frontier,
)
from sweep.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LN2 = math.log(2)
# Loss in nats per token as a Chinchilla law (Hoffmann et al. 2022, eq. 10's fit; exponents 0.34, 0.28).
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def no_module(name):
    raise ImportError(name)


def test_repetitive_bytes_compress_far_below_eight_bits_per_byte():
    results = compressed_bits(b"the cat sat on the mat. " * 4000)
    assert [result.name[:8] for result in results] == ["gzip -9", "xz -9", "zstd -19"]
    for result in results:
        if result.bits is not None:
            assert result.bpb == result.bits / (24 * 4000) and result.bpb < 0.1


def test_random_bytes_do_not_compress():
    data = os.urandom(1 << 16)
    for result in compressed_bits(data):
        if result.bits is not None:
            assert 7.9 <= result.bpb < 8.1  # the container's header lifts it slightly above 8


def test_zstd_without_module_or_executable_is_not_installed():
    zstd = find_zstd(import_module=no_module, which=lambda name: None)
    assert zstd.compress is None and zstd.reason == NOT_INSTALLED
    gzip, xz, _ = default_compressors()
    results = compressed_bits(b"abc" * 100, [gzip, xz, zstd])
    assert (results[2].bits, results[2].bpb, results[2].reason) == (None, None, NOT_INSTALLED)
    assert results[0].bits is not None and results[1].bits is not None


def test_zstd_prefers_the_module_and_asks_for_the_cli_settings():
    made = {}

    def compressor(level, write_checksum):
        made.update(level=level, write_checksum=write_checksum)
        return SimpleNamespace(compress=lambda data: b"z" * 5)

    module = SimpleNamespace(ZstdCompressor=compressor)
    zstd = find_zstd(import_module=lambda name: module, which=lambda name: pytest.fail("looked for the executable"))
    assert compressed_bits(b"x" * 10, [zstd])[0].bpb == 4.0  # 8 × 5 bytes / 10 bytes
    assert made == {"level": 19, "write_checksum": True}


def test_the_zstandard_package_and_the_zstd_executable_write_frames_named_by_version():
    """Both real: the test extra installs zstandard; the executable where the machine has one."""
    import shutil

    import zstandard

    data = b"".join(str(i).encode() * (i % 7 + 1) for i in range(20000))
    package = find_zstd()
    assert package.name == "zstd -19 (libzstd " + ".".join(map(str, zstandard.ZSTD_VERSION)) + ")"
    assert zstandard.ZstdDecompressor().decompress(package.compress(data)) == data
    if shutil.which("zstd") is None:
        pytest.skip("no zstd executable on this machine")
    executable = find_zstd(import_module=no_module)
    assert executable.name.startswith("zstd -19 (zstd v")
    # from stdin the executable writes no content size into the frame, so the reader is told the bound
    assert zstandard.ZstdDecompressor().decompress(executable.compress(data), max_output_size=len(data)) == data


def test_compression_table_is_sorted_with_missing_compressors_last():
    table = compression_table(1.8, "prequential code (best run)", {"gzip -9": 2.9, "xz -9": 2.4, "zstd -19": None})
    assert list(table["code"]) == ["prequential code (best run)", "xz -9", "gzip -9", "zstd -19"]
    assert table["note"].iloc[-1] == "not installed" and np.isnan(table["bpb"].iloc[-1])


def test_description_lengths_are_the_hand_computed_numbers():
    frame = pd.DataFrame(
        {
            "params": [8, 40],
            "params_total": [10, 50],
            "tokens": [1000, 2000],
            "loss": [LN2, 2 * LN2],
            "bpb": [1.0, 2.0],
        }
    )
    lengths = description_lengths(frame, bits_per_param=8)
    # data: D·L/ln 2 = 1000 × 1 and 2000 × 2 bits; model: 10 × 8 and 50 × 8 bits.
    assert lengths["data_bits"].tolist() == pytest.approx([1000, 4000])
    assert lengths["model_bits"].tolist() == pytest.approx([80, 400])
    assert lengths["total_bits"].tolist() == pytest.approx([1080, 4400])
    assert lengths["total_bpb"].tolist() == pytest.approx([1.08, 2.2])
    assert description_lengths(frame)["model_bits"].tolist() == pytest.approx([160, 800])  # bf16 by default


def test_tokens_of_several_bytes_are_refused():
    frame = pd.DataFrame({"params": [8], "params_total": [10], "tokens": [1000], "loss": [LN2], "bpb": [0.3]})
    with pytest.raises(InputError, match="byte tokens"):
        description_lengths(frame)


def test_runs_sharing_a_size_keep_their_shortest_code():
    frame = pd.DataFrame(
        {
            "params": [8, 8, 8],
            "params_total": [10, 10, 10],
            "tokens": [1000] * 3,
            "loss": [2 * LN2, LN2, np.nan],
            "prequential_bits": [1500.0, 1700.0, np.nan],
        }
    )
    codes = best_codes(frame, bits_per_param=8)
    assert len(codes) == 1 and codes["n_runs"].iloc[0] == 2  # the run without a loss is left out
    assert codes["total_bits"].iloc[0] == pytest.approx(1080)
    assert codes["prequential_bits"].iloc[0] == 1500 and codes["prequential_bpb"].iloc[0] == 1.5


def chinchilla_runs():
    """A grid of runs whose loss follows the law; model bits are comparable to data bits across it."""
    rows = []
    for tokens in (1e6, 1e8, 1e10):
        for params in np.geomspace(1e4, 1e9, 11):
            loss = E + A / params**ALPHA + B / tokens**BETA
            rows.append(
                {
                    "params": params,
                    "params_total": params + 256 * 64,
                    "tokens": tokens,
                    "loss": loss,
                    "prequential_bits": 1.1 * tokens * loss / LN2,
                }
            )
    return pd.DataFrame(rows)


def test_frontier_takes_the_shortest_code_at_each_d_and_grows_n_with_d():
    runs = chinchilla_runs()
    best = frontier(runs)
    lengths = description_lengths(runs)
    for row in best.itertuples():
        at_tokens = lengths[lengths["tokens"] == row.tokens].sort_values("total_bits")
        assert row.params == at_tokens["params"].iloc[0]
        assert row.total_bits == pytest.approx(at_tokens["total_bits"].iloc[0])
        assert row.runner_up_params == at_tokens["params"].iloc[1]
        assert row.margin_bits == pytest.approx(at_tokens["total_bits"].iloc[1] - at_tokens["total_bits"].iloc[0])
        assert row.prequential_bits == pytest.approx(1.1 * row.tokens * row.loss / LN2)
    assert list(best["tokens"]) == [1e6, 1e8, 1e10]
    assert np.all(np.diff(best["params"]) > 0)
    # Neither end of the N grid: the model's cost, not the grid, decides.
    assert best["params"].min() > 1e4 and best["params"].max() < 1e9


def test_plot_frontier_writes_a_png(tmp_path):
    path = plot_frontier(chinchilla_runs(), tmp_path / "figures" / "description_length.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000  # axes, lines and stars, not a blank canvas
