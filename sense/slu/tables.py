"""Tables V and VII of the SENSE paper from SLU runs, beside the paper's numbers.

Each SLU run (:func:`sense.slu.recipe.run`) adds its row to a grid of error
rates (:class:`sense.results.ErrorRateTable`: one table per metric, a row per
model, a column per test set). This module puts grids together and adds the
paper's rows beside ours (``"<row> (paper)"``), from the JSON files the
recipes keep (``recipes/<Dataset>/<task>/paper_table_*.json``)::

    python -m sense.slu.tables --metric CVER --out results/table_vii_CVER \\
        --paper recipes/SpeechMASSIVE/SLU/paper_table_vii.json \\
                recipes/SLURP/SLU/paper_table_vii.json recipes/TARIC/SLU/paper_table_vii.json \\
        -- results/SpeechMASSIVE_SLU/fr-FR/table results/SLURP_SLU/table results/TARIC_SLU/table

    python -m sense.slu.tables --metric NEER --paper recipes/MSNER/NER/paper_table_v.json \\
        --paper_table SENSE --out results/table_v_SENSE -- results/MSNER_NER/SENSE/table

A paper file holds ``{"tables": {<metric or table name>: {row: {column: percent}}}}``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from sense.results import ErrorRateTable

PERCENT = 100.0


def merge_tables(stems: Sequence[str], metric: str, title: str = "") -> ErrorRateTable:
    """One grid with the rows and columns of the saved tables ``<stem>_<metric>``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for col in ("SLURP", "TARIC"):
    ...     t = ErrorRateTable(metric="COER")
    ...     t.add("SENSE", col, {"COER": 0.14}, n_query=10)
    ...     _ = t.save(os.path.join(d, col, "table_COER"))
    >>> merge_tables([os.path.join(d, c, "table") for c in ("SLURP", "TARIC")], "COER").columns
    ['SLURP', 'TARIC']
    """
    out = ErrorRateTable(title=title or f"{metric} (%)", metric=metric)
    for stem in stems:
        table = ErrorRateTable.load(f"{stem}_{metric}")
        for model in table.models:
            for column in table.columns:
                value = table.value(model, column, metric)
                if value is not None:
                    out.add(model, column, {metric: value}, n_query=table.facts(column)["n_query"])
    return out


def paper_rows(paths: Sequence[str], table: str) -> dict[str, dict[str, float]]:
    """``{row: {column: percent}}`` of ``table`` in the paper files, merged."""
    rows: dict[str, dict[str, float]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tables = json.load(f)["tables"]
        if table not in tables:
            raise KeyError(f"{path}: no table {table!r} (has {', '.join(tables)})")
        for row, values in tables[table].items():
            rows.setdefault(row, {}).update(values)
    return rows


def add_paper_rows(
    table: ErrorRateTable, paper: Mapping[str, Mapping[str, float]]
) -> ErrorRateTable:
    """Add the paper's rows (percent) as ``"<row> (paper)"``, for the columns it has.

    Example
    -------
    >>> t = ErrorRateTable(metric="COER")
    >>> t.add("SENSE", "SLURP", {"COER": 0.2}, n_query=10)
    >>> print(add_paper_rows(t, {"SENSE": {"SLURP": 14.0}}).to_markdown(title=False), end="")
    | COER          | SLURP |
    |---------------|------:|
    | SENSE         | 20.00 |
    | SENSE (paper) | 14.00 |
    | # utterances  |    10 |
    """
    for row, values in paper.items():
        for column, percent in values.items():
            table.add_paper(row, column, {table.metric: percent / PERCENT})
    return table


def main(argv: Sequence[str] | None = None) -> ErrorRateTable:
    parser = argparse.ArgumentParser(
        prog="python -m sense.slu.tables", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("stems", nargs="+", help="saved tables, without _<metric>.<ext>")
    parser.add_argument("--metric", required=True, help="COER, CVER or NEER")
    parser.add_argument("--paper", nargs="*", default=[], help="paper_table_*.json files")
    parser.add_argument(
        "--paper_table", default=None, help="the table to read in them (default: --metric)"
    )
    parser.add_argument("--out", required=True, help="output stem (.md, .csv, .json written)")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    table = merge_tables(args.stems, args.metric, args.title)
    if args.paper:
        add_paper_rows(table, paper_rows(args.paper, args.paper_table or args.metric))
    table.save(args.out)
    print(table.to_markdown())
    return table


if __name__ == "__main__":
    main()
