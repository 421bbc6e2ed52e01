"""Corpora → token arrays, a train/validation split by document, and batches.

The package owns reading a corpus (`load`: text files, .jsonl lines and .parquet rows through
`documents`, tokenised as bytes or by `tokenizer`; a .bin through `token_files`), what a loaded
corpus is and the split's rules (`corpus`, over `token_ranges`), and the batches, validation set and
bits per byte read from it (`batches`). Other packages import the names below from here.
"""

from sweep.data.batches import (
    bits_per_byte,
    epoch_starts,
    epoch_targets,
    epoch_windows,
    get_batch,
    get_epoch_batch,
    validation_set,
)
from sweep.data.corpus import Corpus, is_validation
from sweep.data.load import load_corpus, stdlib_root
from sweep.data.token_files import WHOLE_READ_BYTES

__all__ = [
    "WHOLE_READ_BYTES",
    "Corpus",
    "bits_per_byte",
    "epoch_starts",
    "epoch_targets",
    "epoch_windows",
    "get_batch",
    "get_epoch_batch",
    "is_validation",
    "load_corpus",
    "stdlib_root",
    "validation_set",
]
