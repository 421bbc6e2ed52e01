"""`python -m sweep`: the same CLI as the `sweep` command."""

from sweep.cli import app

app(prog_name="sweep")
