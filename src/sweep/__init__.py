"""sweep: train a ladder of Transformers, record every run, fit scaling laws."""

__version__ = "0.1.0"

from sweep.store import load_runs  # noqa: E402  (the Python API: sweep.load_runs(path) -> DataFrame)

__all__ = ["load_runs", "__version__"]
