"""The `sweep` command line: parse, call the library, map errors to exit codes. The only package that
imports typer or makes a rich Console; nothing imports it.

`app` (the typer application, its consoles, `guarded`), then one module per family of commands:
`train` (run, worker), `bench`, `inspect` (ls, status, export), `laws` (fit, predict). The views they
print are `tables`, `law_tables`, `code_tables`, `status_view` and `progress`.

Exit codes: 0 success (for `sweep run`: every run of the sweep is done); 1 some runs failed or
diverged, or the store could not be written mid-sweep; 2 bad input (message, no traceback); 3 (`sweep
run`) no run failed, but some are held by other runners still training them, or were left unfinished
by one; 130 interrupted by Ctrl-C.
"""

from sweep.cli.app import app
from sweep.cli.bench import bench
from sweep.cli.inspect import export, ls, status
from sweep.cli.laws import fit, predict
from sweep.cli.train import run, worker

# Registered here, in the order `sweep --help` lists them.
for command in (run, worker, ls, status, bench, fit, predict, export):
    app.command()(command)

__all__ = ["app"]
