"""Result tables laid out like the SENSE paper's: one implementation, a few kinds.

A :class:`ResultTable` is a grid of results: a row per system (model), a
column per data set or language pair, each cell a few metrics of which the
grid shows one. Facts about a column (a data set heading, database sizes,
training hours) must agree across rows and are written as extra rows. The
paper's own numbers sit beside ours as ``"<row> (paper)"`` rows. A table is
saved as Markdown (to read), CSV (the same grid, for spreadsheets) and JSON
(every metric at full precision); loading the JSON back and adding a row is
how several runs fill one table.

Each kind of table is a thin configuration of :class:`ResultTable`:
:class:`RetrievalTable` (Tables I-IV), :class:`ErrorRateTable` (Tables V and
VII), :class:`sense.translation.metrics.BleuTable` (Table VI) and
:class:`sense.summarization.table.SummaryTable` (Table VIII).

Example
-------
>>> table = RetrievalTable(title="X speech -> EN text retrieval (MTEDx)")
>>> table.add("SENSE", "fr-en", {"R@1": 0.8701, "n_query": 2095, "n_search": 32000})
>>> table.add("SAMU-XLSR", "fr-en", 0.8586, n_query=2095, n_search=32000)
>>> print(table.to_markdown(title=False), end="")
| R@1         | fr-en |
|-------------|------:|
| SENSE       | 87.01 |
| SAMU-XLSR   | 85.86 |
| # DB query  |  2095 |
| # DB search |   32K |
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sense.io import write_text_atomic

__all__ = [
    "ErrorRateTable",
    "FactRow",
    "ResultTable",
    "RetrievalTable",
    "format_db_size",
    "format_grid_csv",
    "format_grid_markdown",
    "table_stem",
]

#: Written in every JSON file of a retrieval or error-rate table.
TABLE_FORMAT = "sense.retrieval_table"
TABLE_VERSION = 1
#: Suffixes of the three files :meth:`ResultTable.save` writes.
SUFFIXES = (".md", ".json", ".csv")
#: Database sizes from this value up are written in thousands ("26.5K").
COMPACT_FROM = 10_000
#: Decimals of a value in the Markdown and CSV grids.
PERCENT_DECIMALS = 2
#: Shown where a model was not evaluated on a column.
MISSING = "-"
#: Appended to the name of a row holding the paper's numbers.
PAPER_SUFFIX = " (paper)"
#: Row labels of the database sizes, as in the paper.
QUERY_ROW = "# DB query"
SEARCH_ROW = "# DB search"
#: Row of an error-rate table giving the utterances evaluated in each column.
UTTERANCES_ROW = "# utterances"
#: Label of the CSV row naming the data set of each column.
GROUP_ROW = "group"
#: Column fact holding the data set heading of a column.
GROUP = "group"


def format_db_size(n: int | None, compact: bool = True) -> str:
    """Write a database size the way the paper's tables do.

    Example
    -------
    >>> [format_db_size(n) for n in (957, 4417, 26_500, 280_000, 1_250_000)]
    ['957', '4417', '26.5K', '280K', '1.25M']
    """
    if n is None:
        return MISSING
    if not compact or n < COMPACT_FROM:
        return str(n)
    value, unit = (n / 1e6, "M") if n >= 1_000_000 else (n / 1e3, "K")
    return f"{value:.2f}".rstrip("0").rstrip(".") + unit


def _check_name(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_size(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _same(old, new) -> bool:
    """Whether two facts of a column agree (numbers up to rounding)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    return math.isclose(old, new) if numbers else old == new


class FactRow(NamedTuple):
    """A fact of each column written as a row of the grid.

    Example
    -------
    >>> row = FactRow("n_query", QUERY_ROW, format_db_size, _check_size)
    >>> row.fmt(26_500, True), row.above, row.optional
    ('26.5K', False, False)
    """

    #: Key of the fact in a column's facts (and in its JSON).
    key: str
    #: Row label in the grid.
    label: str
    #: ``fmt(value, compact) -> cell``; ``compact`` is false in CSV.
    fmt: Callable[[Any, bool], str]
    #: ``check(value, what) -> value``: validates (and converts) a given fact.
    check: Callable[[Any, str], Any]
    #: Written above the model rows (else below them).
    above: bool = False
    #: Left out when no column knows the fact.
    optional: bool = False
    #: Name of the fact in error messages (default: its key).
    name: str = ""


class ResultTable:
    """Systems x columns grid of results, written as Markdown, CSV and JSON.

    A kind of table sets the class attributes below and converts its own
    arguments in ``add``; storage, checks, layout and files are shared.

    Parameters
    ----------
    title : str
        Caption, written in bold above the Markdown grid.
    metric : str, optional
        Metric the grid shows (default :attr:`METRIC`); every metric given to
        ``add`` is kept in the JSON file.
    compact_sizes : bool, optional
        Write large sizes as "270K" in Markdown (default :attr:`COMPACT_SIZES`).

    Example
    -------
    >>> t = ErrorRateTable(metric="COER")
    >>> t.add("SENSE", "SLURP", {"COER": 0.2}, n_query=10)
    >>> t.add_paper("SENSE", "SLURP", {"COER": 0.14})
    >>> t.models, t.columns, t.shape, t.value("SENSE (paper)", "SLURP")
    (['SENSE', 'SENSE (paper)'], ['SLURP'], (2, 1), 0.14)
    """

    # -- configuration of a kind of table -----------------------------------

    #: ``format`` written in (and required of) the JSON file.
    FORMAT = ""
    VERSION = 1
    #: What the table is called in error messages.
    NAME = "result table"
    #: What a column is called in error messages.
    COLUMN = "column"
    #: Metric shown by default.
    METRIC = ""
    #: Range of a value, and its unit in error messages.
    LOWER, UPPER = 0.0, 1.0
    UNIT = "a fraction"
    #: A value is shown as ``SCALE * value`` with ``DECIMALS`` decimals.
    SCALE = 100.0
    DECIMALS = PERCENT_DECIMALS
    #: Column facts written as rows (the data set heading is always known).
    FACT_ROWS: tuple[FactRow, ...] = ()
    COMPACT_SIZES = True

    def __init__(
        self, title: str = "", metric: str | None = None, compact_sizes: bool | None = None
    ):
        self.title = title
        self.metric = _check_name(self.METRIC if metric is None else metric, "metric")
        self.compact_sizes = self.COMPACT_SIZES if compact_sizes is None else compact_sizes
        # column -> {fact key: value or None}
        self._columns: dict[str, dict[str, Any]] = {}
        # model -> column -> {metric name: value}
        self._results: dict[str, dict[str, dict[str, float]]] = {}

    # -- filling ------------------------------------------------------------

    def _new_column(self) -> dict[str, Any]:
        return {GROUP: None, **{row.key: None for row in self.FACT_ROWS}}

    def _check_value(self, value, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"metric {name!r} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or not self.LOWER <= value <= self.UPPER:
            if math.isinf(self.LOWER) and math.isinf(self.UPPER):
                need = "be a finite number"
            else:
                need = f"lie in [{self.LOWER:g}, {self.UPPER:g}]"
            raise ValueError(f"{name} must {need} ({self.UNIT}), got {value}")
        return value

    def _check_facts(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        checks = {row.key: row.check for row in self.FACT_ROWS}
        checks[GROUP] = lambda v, what: None if v is None else _check_name(v, what)
        return {key: checks[key](value, key) for key, value in facts.items()}

    def _add_column(self, model: str, column: str, facts: Mapping[str, Any]) -> None:
        """Add ``column`` or check ``facts`` against what the table knows of it."""
        info = self._columns.get(column) or self._new_column()
        updated = dict(info)
        names = {row.key: row.name or row.key for row in self.FACT_ROWS}
        for key, value in facts.items():
            if value is None:
                continue
            if info[key] is not None and not _same(info[key], value):
                raise ValueError(
                    f"{names.get(key, key)} of {self.COLUMN} {column!r} is {info[key]!r} in "
                    f"the table but {value!r} for model {model!r}: a column compares models "
                    "on one data set"
                )
            updated[key] = value
        self._columns[column] = updated

    def _restore_column(self, column: str, facts: Mapping[str, Any]) -> None:
        """Add ``column`` with the facts a saved table gives (the keys it knows)."""
        known = {key: facts.get(key) for key in self._new_column()}
        self._columns[_check_name(column, self.COLUMN)] = self._check_facts(known)

    def _record(
        self,
        model: str,
        column: str,
        metrics: Mapping[str, float],
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        """Check and store one cell: ``metrics`` of ``model`` on ``column``, and its facts.

        Recording a (model, column) again replaces the earlier cell.
        """
        model = _check_name(model, "model")
        column = _check_name(column, self.COLUMN)
        if not metrics:
            raise ValueError(f"no metric given for {model!r} on {column!r}")
        metrics = {
            _check_name(k, "metric name"): self._check_value(v, k) for k, v in metrics.items()
        }
        self._add_column(model, column, self._check_facts(facts or {}))
        self._results.setdefault(model, {})[column] = metrics

    def add(self, model: str, column: str, result: float | Mapping[str, Any], **facts: Any) -> None:
        """Record ``model``'s result on ``column``, and facts of the column.

        ``result`` is the value of the table's metric, or a mapping of metrics
        in which the keys naming a column fact (``n_query``...) give facts;
        facts given as arguments win over those in the mapping.
        """
        known = self._new_column()
        for key in facts:
            if key not in known:
                raise TypeError(f"{type(self).__name__} has no column fact {key!r}")
        if isinstance(result, Mapping):
            metrics = {k: v for k, v in result.items() if k not in known}
            given = {k: v for k, v in result.items() if k in known}
            facts = {**given, **{k: v for k, v in facts.items() if v is not None}}
        else:
            metrics = {self.metric: result}
        self._record(model, column, metrics, facts)

    def add_paper(self, model: str, *args, **kwargs) -> None:
        """:meth:`add` the paper's number for ``model``, as row ``"<model> (paper)"``."""
        self.add(_check_name(model, "model") + PAPER_SUFFIX, *args, **kwargs)

    # -- reading ------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Row names, in the order they were first added."""
        return list(self._results)

    @property
    def columns(self) -> list[str]:
        """Column names, in the order they were first added."""
        return list(self._columns)

    @property
    def pairs(self) -> list[str]:
        """The columns (language pairs in most of the paper's tables)."""
        return self.columns

    @property
    def shape(self) -> tuple[int, int]:
        """(models, columns): the size of the grid of results."""
        return len(self._results), len(self._columns)

    def value(self, model: str, column: str, metric: str | None = None) -> float | None:
        """A result, or ``None`` when it was not recorded."""
        return self._results.get(model, {}).get(column, {}).get(metric or self.metric)

    def facts(self, column: str) -> dict[str, Any]:
        """What the table knows of ``column`` (data set heading, sizes...)."""
        return dict(self._columns[column])

    # -- layout -------------------------------------------------------------

    def corner(self) -> str:
        """The top-left cell of the grid."""
        return self.metric

    def heading(self, column: str) -> str:
        """A column's heading in the grid."""
        return column

    def grid_columns(self) -> list[tuple[str, str, str]]:
        """The grid's columns as (heading, column, metric)."""
        return [(self.heading(c), c, self.metric) for c in self.columns]

    def format_value(self, value: float | None) -> str:
        """A cell of the grid."""
        return MISSING if value is None else f"{self.SCALE * value:.{self.DECIMALS}f}"

    def _grid(self, for_csv: bool) -> list[list[str]]:
        """Header row, group row (if any), fact rows and model rows, as strings.

        Markdown names a group once, above its first column, and may write
        sizes as "270K"; CSV repeats the group in every column and writes
        sizes in full.
        """
        spec = self.grid_columns()
        rows = [[self.corner(), *(heading for heading, _, _ in spec)]]
        groups = [self._columns.get(c, {}).get(GROUP) for _, c, _ in spec]
        if any(g is not None for g in groups):
            if for_csv:
                rows.append([GROUP_ROW, *(g or "" for g in groups)])
            else:
                starts = [g if g != prev else None for g, prev in zip(groups, [None, *groups])]
                rows.append(["", *(g or "" for g in starts)])
        compact = self.compact_sizes and not for_csv

        def fact_rows(above: bool) -> list[list[str]]:
            out = []
            for row in self.FACT_ROWS:
                values = [self._columns.get(c, {}).get(row.key) for _, c, _ in spec]
                if row.above == above and not (row.optional and all(v is None for v in values)):
                    out.append([row.label, *(row.fmt(v, compact) for v in values)])
            return out

        rows += fact_rows(above=True)
        for model in self.models:
            cells = [self.format_value(self.value(model, c, m)) for _, c, m in spec]
            rows.append([model, *cells])
        return rows + fact_rows(above=False)

    def to_markdown(self, title: bool = True) -> str:
        """The grid as an aligned Markdown table, under the title in bold."""
        return format_grid_markdown(self._grid(for_csv=False), self.title if title else "")

    def to_csv(self) -> str:
        """The same grid as CSV, sizes written in full."""
        return format_grid_csv(self._grid(for_csv=True))

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(title={self.title!r}, models={self.models}, columns={self.columns})"

    # -- files --------------------------------------------------------------

    def _body(self) -> dict:
        """The JSON content after format, version and title."""
        return {
            "metric": self.metric,
            "compact_sizes": self.compact_sizes,
            "pairs": [{"pair": c, **info} for c, info in self._columns.items()],
            "results": self._results,
        }

    @classmethod
    def _from_body(cls, data: Mapping) -> ResultTable:
        """A table from :meth:`_body` content (and its title)."""
        table = cls(data.get("title", ""), data["metric"], data.get("compact_sizes", True))
        for info in data["pairs"]:
            table._restore_column(info["pair"], info)
        for model, cells in data["results"].items():
            for column, metrics in cells.items():
                if column not in table._columns:
                    raise ValueError(f"result of {model!r} on unknown {table.COLUMN} {column!r}")
                table._record(model, column, metrics)
        return table

    def to_dict(self) -> dict:
        """JSON-ready content: every metric of every cell at full precision."""
        return {"format": self.FORMAT, "version": self.VERSION, "title": self.title, **self._body()}

    @classmethod
    def from_dict(cls, data: Mapping) -> ResultTable:
        """Rebuild a table from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a {cls.NAME} (expected format {cls.FORMAT!r})")
        if data.get("version", cls.VERSION) != cls.VERSION:
            raise ValueError(f"unsupported {cls.NAME} version {data.get('version')!r}")
        return cls._from_body(data)

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write ``<path>.md``, ``<path>.json`` and ``<path>.csv``.

        ``path`` may carry one of these suffixes or none. Returns the paths
        written, keyed by suffix.
        """
        stem = table_stem(path)
        texts = {
            ".md": self.to_markdown(),
            ".json": json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n",
            ".csv": self.to_csv(),
        }
        written = {}
        for suffix, text in texts.items():
            written[suffix] = stem.with_name(stem.name + suffix)
            write_text_atomic(written[suffix], text)
        return written

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResultTable:
        """Read a table saved by :meth:`save` (from its ``.json`` file)."""
        file = _json_file(path)
        if not file.is_file():
            raise FileNotFoundError(f"no {cls.NAME} at {file}")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: not valid JSON ({err})") from err
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{file}: {err}") from err

    @classmethod
    def open(cls, path: str | os.PathLike, *args, **kwargs) -> ResultTable:
        """Load the table saved at ``path``, or start an empty one (``cls(*args, **kwargs)``).

        This is how several runs fill one table: each opens it, adds its row
        and saves it.
        """
        return cls.load(path) if _json_file(path).is_file() else cls(*args, **kwargs)


class RetrievalTable(ResultTable):
    """Models x language pairs grid of retrieval results (Tables I-IV).

    A column is a pair (``"fr-en"``: queries in French, search database in
    English); a cell shows one metric (R@1 by default) in percent; two last
    rows give the sizes of the query and search databases.

    Parameters
    ----------
    title : str
        Caption, e.g. ``"EN speech -> Y text retrieval (MUST-C)"``.
    metric : str
        Metric shown in the grid (``"R@1"``, ``"R@5"``, ``"MRR"``...).
    compact_sizes : bool
        Write large database sizes as "270K" (Tables II-IV) rather than in full.

    Example
    -------
    >>> t = RetrievalTable()
    >>> t.add("SENSE", "en-de", 0.8604, n_query=4663, n_search=234_000)
    >>> t.models, t.pairs, t.shape
    (['SENSE'], ['en-de'], (1, 1))
    """

    FORMAT, VERSION = TABLE_FORMAT, TABLE_VERSION
    NAME, COLUMN, METRIC = "retrieval table", "pair", "R@1"
    FACT_ROWS = (
        FactRow("n_query", QUERY_ROW, format_db_size, _check_size),
        FactRow("n_search", SEARCH_ROW, format_db_size, _check_size),
    )

    def __init__(self, title: str = "", metric: str = "R@1", compact_sizes: bool = True):
        super().__init__(title, metric, compact_sizes)

    def add(
        self,
        model: str,
        pair: str,
        result: float | Mapping[str, float | int],
        n_query: int | None = None,
        n_search: int | None = None,
        group: str | None = None,
    ) -> None:
        """Record one model's result on one column.

        Parameters
        ----------
        model : str
            Row name, e.g. ``"SENSE"``.
        pair : str
            Column name, ``"<query language>-<search language>"`` or a test set.
        result : float or mapping
            The table's metric as a fraction, or a dictionary of metrics as
            returned by :func:`sense.retrieval.retrieval_metrics` (its
            ``n_query`` / ``n_search`` give the database sizes).
        n_query, n_search : int, optional
            Database sizes; a column's sizes must agree across models.
        group : str, optional
            Data set heading of the column (``"MTEDx"``, ``"FLEURS"``).

        Adding a (model, pair) again replaces the earlier result.
        """
        super().add(model, pair, result, n_query=n_query, n_search=n_search, group=group)

    def sizes(self, pair: str) -> tuple[int | None, int | None]:
        """(query database size, search database size) of a column."""
        info = self._columns[pair]
        return info["n_query"], info["n_search"]


class ErrorRateTable(ResultTable):
    """Models x columns grid of error rates (COER, CVER, NEER), in percent.

    Laid out like Tables V and VII of the SENSE paper: a column is a data
    set or a ``"<train language>-<test language>"`` pair, a row a model.
    Values are fractions (0.25 is shown as 25.00); an error rate may exceed
    1 (insertions). ``n_query`` is the number of utterances evaluated. The
    JSON file has the retrieval table's layout (and format name).

    Example
    -------
    >>> t = ErrorRateTable(metric="NEER")
    >>> t.add("SENSE", "nl-fr", {"NEER": 0.4255, "CVER": 1.2}, n_query=120)
    >>> print(t.to_markdown(title=False), end="")
    | NEER         | nl-fr |
    |--------------|------:|
    | SENSE        | 42.55 |
    | # utterances |   120 |
    """

    FORMAT, VERSION = TABLE_FORMAT, TABLE_VERSION
    NAME, METRIC, COMPACT_SIZES = "error-rate table", "COER", False
    UPPER = math.inf
    FACT_ROWS = (FactRow("n_query", UTTERANCES_ROW, format_db_size, _check_size),)

    def add(
        self,
        model: str,
        column: str,
        result: float | Mapping[str, float | int],
        n_query: int | None = None,
        group: str | None = None,
    ) -> None:
        """Record ``model``'s error rates (fractions) on ``column`` and its utterance count."""
        super().add(model, column, result, n_query=n_query, group=group)


def table_stem(path: str | os.PathLike) -> Path:
    """``path`` without a table suffix (``.md``, ``.json``, ``.csv``).

    Example
    -------
    >>> table_stem("results/table2.json").as_posix(), table_stem("t.v1").as_posix()
    ('results/table2', 't.v1')
    """
    path = Path(path)
    return path.with_suffix("") if path.suffix in SUFFIXES else path


def _json_file(path: str | os.PathLike) -> Path:
    stem = table_stem(path)
    return stem.with_name(stem.name + ".json")


def format_grid_markdown(rows: list[list[str]], title: str = "") -> str:
    """A grid of strings (header row first) as an aligned Markdown table.

    The first column is left-aligned, the others right-aligned.

    Example
    -------
    >>> print(format_grid_markdown([["BLEU", "FR"], ["SENSE", "21.67"]]), end="")
    | BLEU  |    FR |
    |-------|------:|
    | SENSE | 21.67 |
    """
    widths = [max(3, max(len(r[c]) for r in rows)) for c in range(len(rows[0]))]

    def line(cells):
        padded = [cells[0].ljust(widths[0])]
        padded += [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    out = [line(rows[0]), rule, *(line(r) for r in rows[1:])]
    if title:
        out = [f"**{title}**", "", *out]
    return "\n".join(out) + "\n"


def format_grid_csv(rows: list[list[str]]) -> str:
    """A grid of strings as CSV text.

    Example
    -------
    >>> format_grid_csv([["BLEU", "FR"], ["SENSE", "21.67"]])
    'BLEU,FR\\nSENSE,21.67\\n'
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
