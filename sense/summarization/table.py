"""Table VIII of the paper: ROUGE-L and BERTScore F1 per embedding family.

Each run adds its row (the embedding family it was trained with) to one
table saved as Markdown, JSON (full precision, loadable to add rows) and
CSV, the paper's numbers beside it. Scores are in percent.

Example
-------
>>> table = SummaryTable()
>>> table.add("SENSE (this run)", {"ROUGE-L": 25.0, "BERTScore-F1": 30.5, "loss": 2.0})
>>> print(table.to_markdown(title=False), end="")
| Model             | ROUGE-L | BERTScore-F1 |
|-------------------|--------:|-------------:|
| SAMU-XLSR (paper) |   19.95 |        24.47 |
| SONAR (paper)     |   22.62 |        31.79 |
| SENSE (paper)     |   23.51 |        32.78 |
| SENSE (this run)  |   25.00 |        30.50 |
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sense.results import ResultTable

TABLE_FORMAT = "sense.summary_table"
TABLE_VERSION = 1
METRICS = ("ROUGE-L", "BERTScore-F1")
#: Table VIII of the paper (DECODA test set), percent.
PAPER = {
    "SAMU-XLSR": {"ROUGE-L": 19.95, "BERTScore-F1": 24.47},
    "SONAR": {"ROUGE-L": 22.62, "BERTScore-F1": 31.79},
    "SENSE": {"ROUGE-L": 23.51, "BERTScore-F1": 32.78},
}
DEFAULT_TITLE = "DECODA test set (Table VIII)"
#: The one column of results behind the grid, whose columns are the metrics.
TEST_SET = "test"


class SummaryTable(ResultTable):
    """Rows of (model, ROUGE-L, BERTScore-F1), the paper's rows first.

    The grid's columns are the metrics of one test set, in percent.

    Parameters
    ----------
    title : str
    paper : bool
        Start with the paper's rows (Table VIII).

    Example
    -------
    >>> t = SummaryTable(paper=False)
    >>> t.add("SENSE", {"ROUGE-L": 25.0, "loss": 2.0})
    >>> t.rows, t.value("SENSE", TEST_SET, "ROUGE-L")
    ({'SENSE': {'ROUGE-L': 25.0}}, 25.0)
    """

    FORMAT, VERSION = TABLE_FORMAT, TABLE_VERSION
    NAME, METRIC = "summary table", METRICS[0]
    LOWER, UPPER, UNIT, SCALE = -math.inf, math.inf, "percent", 1.0

    def __init__(self, title: str = DEFAULT_TITLE, paper: bool = True):
        super().__init__(title, self.METRIC)
        if paper:
            for model, metrics in PAPER.items():
                self.add_paper(model, metrics)

    def add(self, model: str, metrics: Mapping[str, float]) -> None:
        """Add or replace a row; keys other than :data:`METRICS` are ignored."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        row = {name: float(metrics[name]) for name in METRICS if metrics.get(name) is not None}
        if not row:
            raise ValueError(f"{model}: none of {METRICS} in {sorted(metrics)}")
        super().add(model, TEST_SET, row)

    @property
    def rows(self) -> dict[str, dict[str, float]]:
        """``{model: {metric: percent}}``, in the order the rows were added."""
        return {model: dict(cells[TEST_SET]) for model, cells in self._results.items()}

    def corner(self) -> str:
        return "Model"

    def grid_columns(self) -> list[tuple[str, str, str]]:
        return [(metric, TEST_SET, metric) for metric in METRICS]

    def _body(self) -> dict:
        return {"rows": self.rows}

    @classmethod
    def _from_body(cls, data: Mapping) -> SummaryTable:
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
