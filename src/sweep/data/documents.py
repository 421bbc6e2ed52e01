"""Documents from record files: one per line of a .jsonl file, one per row of a .parquet file.

The text comes from `data.text_field`. A line that is not a JSON object holding that field as a
string is malformed: by default the corpus is refused with the count and the first few lines named
(a wrong field name fails the same way, on every line); with `data.malformed: skip` such lines are
left out and counted, and every run records the count. Parquet files come through pyarrow, an extra.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sweep.errors import SweepError, cut, require_package, shown

RECORD_SUFFIXES = (".jsonl", ".parquet")
SHOWN_PROBLEMS = 3  # malformed lines named in the error; the rest are counted


@dataclass
class Malformed:
    """Malformed lines met so far, over every file of a corpus."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    good: int = 0  # records read
    fields: str | None = None  # the fields of the first record that lacked data.text_field

    def add(self, where: str, problem: str, fields: str | None = None) -> None:
        self.count += 1
        if len(self.examples) < SHOWN_PROBLEMS:
            self.examples.append(f"{where}: {problem}")
        self.fields = self.fields or fields

    def check(self, text_field: str, policy: str) -> None:
        """Refuse the corpus when lines were malformed, unless `policy` is 'skip'; refuse it always
        when no record had the text field, which names the wrong field rather than bad lines."""
        if self.count and not self.good and self.fields is not None:
            raise SweepError(
                f"data.text_field: no record has a field {shown(text_field)}; the first has fields: {self.fields}"
            )
        if self.count and policy != "skip":
            raise SweepError(
                f"data.corpus: {self.count} malformed record(s) ({'; '.join(self.examples)}); "
                f"each needs a string field {shown(text_field)} (data.text_field), or set "
                "data.malformed: skip to leave them out (they are counted)"
            )


def is_record_file(path: Path) -> bool:
    return path.suffix in RECORD_SUFFIXES


def read_records(path: Path, name: str, text_field: str, malformed: Malformed) -> list[tuple[str, str]]:
    """(document name, text) for each good record of `path`; `name` is the file's name in the corpus."""
    if path.suffix == ".parquet":
        return _parquet(path, name, text_field, malformed)
    return _jsonl(path, name, text_field, malformed)


def _jsonl(path: Path, name: str, text_field: str, malformed: Malformed) -> list[tuple[str, str]]:
    documents = []
    try:
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue  # a blank line (a trailing newline, a gap) holds no record
                text, problem, fields = _text(line, text_field)
                if problem:
                    malformed.add(f"{cut(name, 120)} line {number}", problem, fields)
                else:
                    documents.append((f"{name}#{number}", text))
                    malformed.good += 1
    except OSError as err:
        raise SweepError(f"data.corpus: cannot read {cut(str(path), 200)}: {err.strerror}") from None
    return documents


def _text(line: bytes, text_field: str) -> tuple[str | None, str | None, str | None]:
    """(text, None, None) from a good line; (None, what is wrong, the record's fields if it lacks
    the text field) from a malformed one."""
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8", None
    except ValueError as err:
        return None, f"not JSON ({cut(str(err), 80)})", None
    if not isinstance(record, dict):
        return None, f"not a JSON object but {_json_kind(record)}", None
    if text_field not in record:
        fields = cut(", ".join(map(str, record)), 120)
        return None, f"no field {shown(text_field)} (fields: {fields})", fields
    if not isinstance(record[text_field], str):
        return None, f"field {shown(text_field)} is {_json_kind(record[text_field])}, not a string", None
    return record[text_field], None, None


def _json_kind(value) -> str:
    """How JSON names a parsed value's type."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _parquet(path: Path, name: str, text_field: str, malformed: Malformed) -> list[tuple[str, str]]:
    pyarrow = require_package("pyarrow", "parquet", f"data.corpus: {cut(name, 200)}, a Parquet file,")
    import pyarrow.parquet as parquet

    try:
        table = parquet.ParquetFile(path)
        columns = table.schema_arrow.names
        if text_field not in columns:
            raise SweepError(
                f"data.text_field: {shown(text_field)} is not a column of {cut(name, 200)} "
                f"(columns: {cut(', '.join(columns), 200)})"
            )
        if not pyarrow.types.is_string(table.schema_arrow.field(text_field).type) and not pyarrow.types.is_large_string(
            table.schema_arrow.field(text_field).type
        ):
            raise SweepError(
                f"data.text_field: column {shown(text_field)} of {cut(name, 200)} holds "
                f"{table.schema_arrow.field(text_field).type}, not text"
            )
        texts = table.read(columns=[text_field]).column(text_field).to_pylist()
    except SweepError:
        raise
    except Exception as err:  # pyarrow raises its own ArrowInvalid / OSError for a damaged file
        raise SweepError(f"data.corpus: cannot read {cut(name, 200)} as Parquet: {cut(str(err), 200)}") from None
    documents = []
    for row, text in enumerate(texts):
        if text is None:
            malformed.add(f"{cut(name, 120)} row {row}", f"{shown(text_field)} is null")
        else:
            documents.append((f"{name}#{row}", text))
            malformed.good += 1
    return documents
