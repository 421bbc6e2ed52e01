"""One side of a split as one sequence of token ids: a tensor for text tokenised in memory, or
ranges of a token file on disk that are read only where a batch looks.

A token .bin (nanoGPT's train.bin, any size) is memory-mapped, never read whole into memory nor
widened: each side of its split is a `TokenRanges` over the file, and batches convert only the
windows they read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sweep.errors import SweepError, cut

DOCUMENT_SEPARATOR = b"\x00"  # a byte that text files do not contain


class TokenRanges:
    """One side of a token file's split as one sequence, without copying it: the (start, length) token
    ranges of the file that hold the side's chunks, in file order, laid end to end, as concatenating
    the chunks did; a window may run from one range into the next as it ran across chunks. uint8 files
    keep the separator that joining byte documents puts after each part (`load._join`), so their batches
    stay the same too. Ids are checked against `vocab_size` as windows are read: a large file's are
    not all read at load (`token_files.WHOLE_READ_BYTES`)."""

    def __init__(
        self, path: Path, dtype: np.dtype, starts: np.ndarray, lengths: np.ndarray, separated: bool, vocab_size: int
    ):
        self.path, self.dtype = path, dtype
        self.vocab_size = vocab_size
        # Per range (n_ranges,), in the sequence: where it begins (and one past the last), where its
        # tokens end (its separator's position, where `separated`), and file position minus sequence position.
        self.offsets = np.concatenate(([0], np.cumsum(lengths + separated)))
        self.ends = self.offsets[:-1] + lengths
        self.shifts = starts - self.offsets[:-1]

    def mapped(self) -> np.memmap:
        """The whole file, (N_file,) ids as stored, mapped read-only afresh for each read: a map held
        across reads would keep every page a batch ever touched in this process's resident set, up to
        the file's size (nanoGPT maps each batch anew for this reason). The pages stay in the page
        cache, shared by every process that reads the file."""
        return np.memmap(self.path, dtype=self.dtype, mode="r")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def windows(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        """The `length` tokens from each of `starts` (n,), positions in the sequence: (n, length) int64.
        Only these are read from the file and converted."""
        starts = starts.numpy()
        ranges = np.searchsorted(self.offsets, starts, side="right") - 1  # (n,) the range each window starts in
        file_positions = (starts + self.shifts[ranges])[:, None] + np.arange(length)  # (n, length)
        crossing = starts + length > self.ends[ranges]  # (n,) windows that run past their range's tokens
        separators = np.zeros(file_positions.shape, dtype=bool)  # (n, length)
        if crossing.any():  # their tokens mapped one by one, by binary search over the ranges' offsets
            positions = starts[crossing, None] + np.arange(length)  # (n_crossing, length) in the sequence
            position_ranges = np.searchsorted(self.offsets, positions, side="right") - 1
            file_positions[crossing] = positions + self.shifts[position_ranges]
            separators[crossing] = positions == self.ends[position_ranges]  # only where separated
            file_positions[separators] = 0  # a separator's position may lie past the file's end
        ids = self.mapped()[file_positions].astype(np.int64)
        ids[separators] = DOCUMENT_SEPARATOR[0]
        if int(ids.max()) >= self.vocab_size:
            raise SweepError(
                f"data.vocab_size: {self.vocab_size} is too small for token id {int(ids.max())} "
                f"read from {cut(str(self.path), 200)}"
            )
        return torch.from_numpy(ids)


Tokens = torch.Tensor | TokenRanges  # a text corpus's tensor or a token file's ranges
