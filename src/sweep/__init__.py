"""sweep: train a ladder of Transformers, record every run, fit scaling laws.

The Python API is `sweep.load_runs(path) -> DataFrame`. It is imported on first use, so that importing
one family (`sweep.laws` on a machine that only fits) does not load the store and the config with it."""

__version__ = "0.1.0"

__all__ = ["load_runs", "__version__"]


def __getattr__(name: str):
    if name == "load_runs":
        from sweep.store import load_runs

        return load_runs
    raise AttributeError(f"module 'sweep' has no attribute {name!r}")
