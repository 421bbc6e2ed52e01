"""The run store: one directory per run on disk, and everything that reads it back. No torch, no
fitting, nothing about how runs were launched.

- `layout`: where a run's, a trunk's and a branch point's files are (`Store`), and how they are written;
- `atomic`, `files`: files replaced whole and checked when read (JSON objects, the metrics log);
- `records`: status.json and result.json, checked against the run table's contract (`sweep.columns`);
- `claims`: fenced claims, so that one runner at a time trains a run;
- `walk`: the one walk over a store's runs and trunks, and the specs registered in it;
- `table`: `load_runs`, the run table as a DataFrame;
- `status`: the read model of `sweep status`.
"""

from sweep.columns import COLUMNS, FINISHED, FLAG_COLUMNS, METRICS_NUMBERS, STATUSES, TEXT_COLUMNS
from sweep.store.files import metrics_through, read_json, read_metrics, write_json
from sweep.store.layout import Store
from sweep.store.records import run_status
from sweep.store.table import load_runs, spec_columns
from sweep.store.walk import RunDir, read_spec, store_specs, walk

__all__ = [
    "COLUMNS",
    "FINISHED",
    "FLAG_COLUMNS",
    "METRICS_NUMBERS",
    "STATUSES",
    "TEXT_COLUMNS",
    "Store",
    "RunDir",
    "walk",
    "read_spec",
    "store_specs",
    "load_runs",
    "spec_columns",
    "read_json",
    "write_json",
    "read_metrics",
    "metrics_through",
    "run_status",
]
