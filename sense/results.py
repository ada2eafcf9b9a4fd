"""Retrieval result tables laid out like Tables I-IV of the SENSE paper.

Rows are models, columns are language pairs ("fr-en": queries in French,
search database in English). A cell shows one metric (R@1 by default) in
percent with two decimals; two last rows give the sizes of the query and the
search databases of each pair. A table is saved as Markdown (to read), CSV
(the same grid, for spreadsheets) and JSON (every metric at full precision);
loading the JSON back and adding a row is how several runs fill one table.

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
from collections.abc import Mapping
from pathlib import Path

from sense.io import write_text_atomic

__all__ = [
    "ErrorRateTable",
    "RetrievalTable",
    "format_db_size",
    "format_grid_csv",
    "format_grid_markdown",
    "table_stem",
]

#: Written in every JSON file so that a wrong file is recognised on load.
TABLE_FORMAT = "sense.retrieval_table"
TABLE_VERSION = 1
#: Suffixes of the three files :meth:`RetrievalTable.save` writes.
SUFFIXES = (".md", ".json", ".csv")
#: Database sizes from this value up are written in thousands ("26.5K").
COMPACT_FROM = 10_000
#: Decimals of a percentage in the Markdown and CSV grids.
PERCENT_DECIMALS = 2
#: Shown where a model was not evaluated on a pair.
MISSING = "-"
#: Row labels of the database sizes, as in the paper.
QUERY_ROW = "# DB query"
SEARCH_ROW = "# DB search"
#: Label of the CSV row naming the data set of each column.
GROUP_ROW = "group"
#: Keys of a metrics dictionary (see :func:`sense.retrieval.retrieval_metrics`)
#: that hold database sizes rather than metrics.
SIZE_KEYS = ("n_query", "n_search")


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


def _check_metric_value(value, name: str, upper: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= upper:
        bound = "a fraction in [0, 1]" if upper == 1.0 else f"a fraction in [0, {upper}]"
        raise ValueError(f"metric {name!r} must be {bound}, got {value}")
    return value


class RetrievalTable:
    """Models x language pairs grid of retrieval results.

    Parameters
    ----------
    title : str
        Caption, e.g. ``"EN speech -> Y text retrieval (MUST-C)"``.
    metric : str
        Metric shown in the grid (``"R@1"``, ``"R@5"``, ``"MRR"``...); every
        metric given to :meth:`add` is kept in the JSON file.
    compact_sizes : bool
        Write large database sizes as "270K" (Tables II-IV) rather than in full.

    Example
    -------
    >>> t = RetrievalTable()
    >>> t.add("SENSE", "en-de", 0.8604, n_query=4663, n_search=234_000)
    >>> t.models, t.pairs, t.shape
    (['SENSE'], ['en-de'], (1, 1))
    """

    #: Largest value a metric may take (a fraction).
    MAX_VALUE = 1.0
    #: Rows giving the sizes of each column: (label, key).
    SIZE_ROWS = ((QUERY_ROW, "n_query"), (SEARCH_ROW, "n_search"))

    def __init__(self, title: str = "", metric: str = "R@1", compact_sizes: bool = True):
        self.title = title
        self.metric = _check_name(metric, "metric")
        self.compact_sizes = compact_sizes
        # pair -> {"group": str | None, "n_query": int | None, "n_search": int | None}
        self._pairs: dict[str, dict] = {}
        # model -> pair -> {metric name: fraction}
        self._results: dict[str, dict[str, dict[str, float]]] = {}

    # -- filling ------------------------------------------------------------

    def add(
        self,
        model: str,
        pair: str,
        result: float | Mapping[str, float | int],
        n_query: int | None = None,
        n_search: int | None = None,
        group: str | None = None,
    ) -> None:
        """Record one model's result on one language pair.

        Parameters
        ----------
        model : str
            Row name, e.g. ``"SENSE"``.
        pair : str
            Column name, ``"<query language>-<search language>"``.
        result : float or mapping
            The table's metric as a fraction in [0, 1], or a dictionary of
            metrics as returned by :func:`sense.retrieval.retrieval_metrics`
            (its ``n_query`` / ``n_search`` give the database sizes).
        n_query, n_search : int, optional
            Database sizes; a pair's sizes must agree across models.
        group : str, optional
            Data set heading of the column (``"MTEDx"``, ``"FLEURS"``).

        Adding a (model, pair) again replaces the earlier result.
        """
        model = _check_name(model, "model")
        pair = _check_name(pair, "pair")
        if group is not None:
            _check_name(group, "group")
        if isinstance(result, Mapping):
            metrics = {k: v for k, v in result.items() if k not in SIZE_KEYS}
            n_query = result.get("n_query", n_query) if n_query is None else n_query
            n_search = result.get("n_search", n_search) if n_search is None else n_search
        else:
            metrics = {self.metric: result}
        if not metrics:
            raise ValueError(f"no metric given for {model!r} on {pair!r}")
        metrics = {
            _check_name(k, "metric name"): _check_metric_value(v, k, self.MAX_VALUE)
            for k, v in metrics.items()
        }
        sizes = {
            "n_query": _check_size(n_query, "n_query"),
            "n_search": _check_size(n_search, "n_search"),
        }

        info = self._pairs.get(pair, {"group": None, "n_query": None, "n_search": None})
        updated = dict(info)
        for key, value in (*sizes.items(), ("group", group)):
            if value is None:
                continue
            if info[key] is not None and info[key] != value:
                raise ValueError(
                    f"{key} of pair {pair!r} is {info[key]!r} in the table but {value!r} "
                    f"for model {model!r}: a column compares models on one data set"
                )
            updated[key] = value
        self._pairs[pair] = updated
        self._results.setdefault(model, {})[pair] = metrics

    # -- reading ------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Row names, in the order they were first added."""
        return list(self._results)

    @property
    def pairs(self) -> list[str]:
        """Column names, in the order they were first added."""
        return list(self._pairs)

    @property
    def shape(self) -> tuple[int, int]:
        """(models, pairs): the size of the grid of results."""
        return len(self._results), len(self._pairs)

    def value(self, model: str, pair: str, metric: str | None = None) -> float | None:
        """A result as a fraction, or ``None`` when it was not recorded."""
        return self._results.get(model, {}).get(pair, {}).get(metric or self.metric)

    def sizes(self, pair: str) -> tuple[int | None, int | None]:
        """(query database size, search database size) of a pair."""
        info = self._pairs[pair]
        return info["n_query"], info["n_search"]

    def _grid(self, for_csv: bool) -> list[list[str]]:
        """Header row, group row (if any), model rows and size rows, as strings.

        Markdown names a group once, above its first column, and may write
        sizes as "270K"; CSV repeats the group in every column and writes
        sizes in full.
        """
        rows = [[self.metric, *self.pairs]]
        groups = [self._pairs[p]["group"] for p in self.pairs]
        if any(g is not None for g in groups):
            if for_csv:
                rows.append([GROUP_ROW, *(g or "" for g in groups)])
            else:
                starts = [g if g != prev else None for g, prev in zip(groups, [None, *groups])]
                rows.append(["", *(g or "" for g in starts)])
        for model in self.models:
            cells = []
            for pair in self.pairs:
                v = self.value(model, pair)
                cells.append(MISSING if v is None else f"{100.0 * v:.{PERCENT_DECIMALS}f}")
            rows.append([model, *cells])
        compact = self.compact_sizes and not for_csv
        for label, key in self.SIZE_ROWS:
            rows.append(
                [label, *(format_db_size(self._pairs[p][key], compact) for p in self.pairs)]
            )
        return rows

    def to_markdown(self, title: bool = True) -> str:
        """The grid as an aligned Markdown table (percent, 2 decimals)."""
        return format_grid_markdown(self._grid(for_csv=False), self.title if title else "")

    def to_csv(self) -> str:
        """The same grid as CSV: percentages (2 decimals), exact database sizes."""
        return format_grid_csv(self._grid(for_csv=True))

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return f"RetrievalTable(title={self.title!r}, models={self.models}, pairs={self.pairs})"

    # -- files --------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready content: every metric of every cell at full precision."""
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "title": self.title,
            "metric": self.metric,
            "compact_sizes": self.compact_sizes,
            "pairs": [{"pair": p, **info} for p, info in self._pairs.items()],
            "results": self._results,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> RetrievalTable:
        """Rebuild a table from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or data.get("format") != TABLE_FORMAT:
            raise ValueError(f"not a retrieval table (expected format {TABLE_FORMAT!r})")
        if data.get("version") != TABLE_VERSION:
            raise ValueError(f"unsupported retrieval table version {data.get('version')!r}")
        table = cls(data.get("title", ""), data["metric"], data.get("compact_sizes", True))
        for info in data["pairs"]:
            table._pairs[_check_name(info["pair"], "pair")] = {
                "group": info.get("group"),
                "n_query": _check_size(info.get("n_query"), "n_query"),
                "n_search": _check_size(info.get("n_search"), "n_search"),
            }
        for model, cells in data["results"].items():
            for pair, metrics in cells.items():
                if pair not in table._pairs:
                    raise ValueError(f"result of {model!r} on unknown pair {pair!r}")
                table._results.setdefault(_check_name(model, "model"), {})[pair] = {
                    k: _check_metric_value(v, k, cls.MAX_VALUE) for k, v in metrics.items()
                }
        return table

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
    def load(cls, path: str | os.PathLike) -> RetrievalTable:
        """Read a table saved by :meth:`save` (from its ``.json`` file)."""
        file = table_stem(path).with_name(table_stem(path).name + ".json")
        if not file.is_file():
            raise FileNotFoundError(f"no retrieval table at {file}")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: not valid JSON ({err})") from err
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{file}: {err}") from err

    @classmethod
    def open(cls, path: str | os.PathLike, title: str = "", metric: str = "R@1") -> RetrievalTable:
        """Load the table saved at ``path``, or start an empty one there.

        This is how several runs fill one table: each opens it, adds its row
        and saves it.
        """
        file = table_stem(path).with_name(table_stem(path).name + ".json")
        return cls.load(path) if file.is_file() else cls(title, metric)


#: Row of an error-rate table giving the utterances evaluated in each column.
UTTERANCES_ROW = "# utterances"


class ErrorRateTable(RetrievalTable):
    """Models x columns grid of error rates (COER, CVER, NEER), in percent.

    Laid out like Tables V and VII of the SENSE paper: a column is a data
    set or a ``"<train language>-<test language>"`` pair, a row a model.
    Values are fractions (0.25 is shown as 25.00); an error rate may exceed
    1 (insertions). ``n_query`` is the number of utterances evaluated.

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

    MAX_VALUE = math.inf
    SIZE_ROWS = ((UTTERANCES_ROW, "n_query"),)

    def __init__(self, title: str = "", metric: str = "COER", compact_sizes: bool = False):
        super().__init__(title, metric, compact_sizes)


def table_stem(path: str | os.PathLike) -> Path:
    """``path`` without a table suffix (``.md``, ``.json``, ``.csv``)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in SUFFIXES else path


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
    """A grid of strings as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
