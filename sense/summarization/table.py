"""Table VIII of the paper: ROUGE-L and BERTScore F1 per embedding family.

Each run adds its row (the embedding family it was trained with) to one
table saved as Markdown, JSON (full precision, loadable to add rows) and
CSV, the paper's numbers beside it. Scores are in percent.

Example
-------
>>> table = SummaryTable()
>>> table.add("SENSE (this run)", {"ROUGE-L": 25.0, "BERTScore-F1": 30.5, "loss": 2.0})
>>> print(table.to_markdown(), end="")
| Model             | ROUGE-L | BERTScore-F1 |
|-------------------|--------:|-------------:|
| SAMU-XLSR (paper) |   19.95 |        24.47 |
| SONAR (paper)     |   22.62 |        31.79 |
| SENSE (paper)     |   23.51 |        32.78 |
| SENSE (this run)  |   25.00 |        30.50 |
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from sense.io import write_text_atomic
from sense.results import MISSING, SUFFIXES, table_stem

TABLE_FORMAT = "sense.summary_table"
TABLE_VERSION = 1
METRICS = ("ROUGE-L", "BERTScore-F1")
#: Table VIII of the paper (DECODA test set), percent.
PAPER = {
    "SAMU-XLSR": {"ROUGE-L": 19.95, "BERTScore-F1": 24.47},
    "SONAR": {"ROUGE-L": 22.62, "BERTScore-F1": 31.79},
    "SENSE": {"ROUGE-L": 23.51, "BERTScore-F1": 32.78},
}
PAPER_SUFFIX = " (paper)"
DECIMALS = 2


class SummaryTable:
    """Rows of (model, ROUGE-L, BERTScore-F1), the paper's rows first.

    Parameters
    ----------
    title : str
    paper : bool
        Start with the paper's rows (Table VIII).
    """

    def __init__(self, title: str = "DECODA test set (Table VIII)", paper: bool = True):
        self.title = title
        self.rows: dict[str, dict[str, float]] = {}
        if paper:
            for model, metrics in PAPER.items():
                self.rows[model + PAPER_SUFFIX] = dict(metrics)

    def add(self, model: str, metrics: Mapping[str, float]) -> None:
        """Add or replace a row; keys other than :data:`METRICS` are ignored."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        row = {}
        for name in METRICS:
            if name in metrics and metrics[name] is not None:
                value = float(metrics[name])
                if not math.isfinite(value):
                    raise ValueError(f"{model}: {name} is {value}")
                row[name] = value
        if not row:
            raise ValueError(f"{model}: none of {METRICS} in {sorted(metrics)}")
        self.rows[model] = row

    def _grid(self) -> list[list[str]]:
        grid = [["Model", *METRICS]]
        for model, row in self.rows.items():
            cells = [f"{row[m]:.{DECIMALS}f}" if m in row else MISSING for m in METRICS]
            grid.append([model, *cells])
        return grid

    def to_markdown(self) -> str:
        grid = self._grid()
        widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]

        def line(cells):
            parts = [cells[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(cells[1:], widths[1:])
            ]
            return "| " + " | ".join(parts) + " |\n"

        rule = "|" + "-" * (widths[0] + 2) + "|"
        rule += "|".join("-" * (w + 1) + ":" for w in widths[1:]) + "|\n"
        return line(grid[0]) + rule + "".join(line(r) for r in grid[1:])

    def to_csv(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(self._grid())
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "title": self.title,
            "rows": self.rows,
        }

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write ``<path>.md`` (with the title), ``.json`` and ``.csv``."""
        stem = table_stem(path)
        texts = {
            ".md": f"{self.title}\n\n{self.to_markdown()}",
            ".json": json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n",
            ".csv": self.to_csv(),
        }
        written = {}
        for suffix in SUFFIXES:
            written[suffix] = stem.with_name(stem.name + suffix)
            write_text_atomic(written[suffix], texts[suffix])
        return written

    @classmethod
    def open(cls, path: str | os.PathLike) -> SummaryTable:
        """The table saved at ``path`` (its ``.json``), or a new one with the paper's rows."""
        file = table_stem(path).with_name(table_stem(path).name + ".json")
        if not file.is_file():
            return cls()
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != TABLE_FORMAT:
            raise ValueError(f"{file}: not a summary table")
        table = cls(data.get("title", ""), paper=False)
        for model, row in data["rows"].items():
            table.add(model, row)
        return table


def add_table_row(path: str, model: str, metrics: Mapping[str, float]) -> SummaryTable:
    """Open the table at ``path``, add ``model``'s row, save it; the table."""
    table = SummaryTable.open(path)
    table.add(model, metrics)
    table.save(path)
    return table
