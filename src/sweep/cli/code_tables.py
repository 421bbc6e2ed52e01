"""The compression section of `sweep fit` on screen: bits per byte of the best prequential code beside
gzip, xz and zstd on the same bytes, and the description-length frontier (`sweep.codelength`)."""

from __future__ import annotations

from rich.table import Table

from sweep.cli.tables import fixed, human


def compression_tables(section: dict) -> list[Table]:
    """`sweep fit`'s compression section (`sweep.codelength.section.compression_section`): per sweep, the best
    prequential code against classical compressors on the same bytes; then the description-length
    frontier, for each D the N whose two-part code is shortest."""
    tables = []
    for coded in section["tables"]:
        if coded.get("rows") is None:
            tables.append(Table(title=f"bits per byte: no compressor table ({coded['why']})", title_justify="left"))
            continue
        table = Table(
            title=f"sweep {coded['sweep']}: bits per byte on the {human(coded['tokens'])} training bytes "
            f"{coded['run_id']} coded (its prequential code, the lowest bpb)",
            title_justify="left",
        )
        for name in ("code", "bits/byte", "note"):
            table.add_column(name, justify="right" if name == "bits/byte" else "left")
        for row in coded["rows"]:
            table.add_row(row["code"], fixed(row["bpb"], 3), row["note"] or "")
        tables.append(table)
    bits = section["bits_per_param"]
    table = Table(
        title=f"description length per D: data coded by the final model (loss × D) + the model at {bits:g} "
        "bits per parameter (all of them); the N with the shortest total",
        title_justify="left",
        caption="prequential: each batch coded before training on it, no model sent (runs in epoch "
        "order); runner-up: the next shortest N at that D",
        caption_justify="left",
    )
    for name in (
        "D",
        "N",
        "N total",
        "data bits",
        "model bits",
        "total bits/byte",
        "prequential bits/byte",
        "runner-up N",
        "margin bits",
    ):
        table.add_column(name, justify="right")
    for row in section["frontier"]:
        table.add_row(
            human(row["tokens"]),
            human(row["params"]),
            human(row["params_total"]),
            human(row["data_bits"]),
            human(row["model_bits"]),
            fixed(row["total_bpb"], 3),
            fixed(row["prequential_bpb"], 3),
            human(row["runner_up_params"]),
            human(row["margin_bits"]),
        )
    tables.append(table)
    return tables
