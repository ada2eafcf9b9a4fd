"""BLEU as the SENSE paper reports it, and its Table VI layout.

:func:`corpus_bleu` is sacrebleu's corpus BLEU on detokenised text with its
default settings (13a tokenisation, exponential smoothing, case-sensitive),
so a number here is the number ``sacrebleu ref.txt -i hyp.txt`` prints.
:func:`bleu_by_language` scores each source language on its own.
:class:`BleuTable` lays results out like Table VI: one row per model, one
column per source language, and a row of training hours; saved as Markdown,
CSV and JSON.

Example
-------
>>> round(corpus_bleu(["the cat sleeps on the sofa"], ["the cat sleeps on the sofa"]), 1)
100.0
>>> table = BleuTable(title="X speech -> EN text (CoVoST 2)")
>>> table.add("SENSE", "fr", 21.67, hours=180)
>>> print(table.to_markdown(title=False), end="")
| BLEU         |    FR |
|--------------|------:|
| Duration (h) |   180 |
| SENSE        | 21.67 |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sense.results import MISSING, FactRow, ResultTable

#: sacrebleu's defaults, spelled out: what the paper's BLEU means.
BLEU_TOKENIZE = "13a"
BLEU_DECIMALS = 2
HOURS_ROW = "Duration (h)"
TABLE_FORMAT = "sense.bleu_table"
TABLE_VERSION = 1


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of detokenised ``hypotheses`` against one reference each.

    Raises
    ------
    ValueError
        When the two lists differ in length or are empty.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: one each")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    metric = sacrebleu.BLEU(tokenize=BLEU_TOKENIZE)
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def bleu_by_language(
    hypotheses: Sequence[str], references: Sequence[str], languages: Sequence[str]
) -> dict[str, float]:
    """Corpus BLEU of each language's utterances, sorted by language.

    Example
    -------
    >>> scores = bleu_by_language(["a b c d", "x"], ["a b c d", "y"], ["fr", "de"])
    >>> {lang: round(b, 1) for lang, b in scores.items()}
    {'de': 0.0, 'fr': 100.0}
    """
    if not len(hypotheses) == len(references) == len(languages):
        raise ValueError("hypotheses, references and languages must have one entry each")
    groups = defaultdict(list)
    for i, lang in enumerate(languages):
        groups[lang].append(i)
    return {
        lang: corpus_bleu([hypotheses[i] for i in idx], [references[i] for i in idx])
        for lang, idx in sorted(groups.items())
    }


def column_name(language: str) -> str:
    """The paper's column heading of a Common Voice locale.

    Example
    -------
    >>> column_name("fr"), column_name("zh-CN"), column_name("sv-SE")
    ('FR', 'ZH', 'SV')
    """
    return language.split("-")[0].upper()


def format_hours(hours: float | None) -> str:
    """Training hours as the paper writes them (whole hours; two digits below one).

    Example
    -------
    >>> format_hours(180.4), format_hours(0.0123), format_hours(None)
    ('180', '0.012', '-')
    """
    if hours is None:
        return MISSING
    return f"{hours:.0f}" if hours >= 1 else f"{hours:.2g}"


def _check_hours(hours, what: str) -> float | None:
    return None if hours is None else float(hours)


class BleuTable(ResultTable):
    """Models x source languages grid of BLEU scores, with training hours (Table VI).

    The hours row is left out when no hours are known.

    Parameters
    ----------
    title : str
        Caption.

    Example
    -------
    >>> t = BleuTable()
    >>> t.add("SENSE", "fr", 21.67, hours=180.0); t.add("SENSE", "de", 21.95)
    >>> t.languages, t.value("SENSE", "de")
    (['fr', 'de'], 21.95)
    """

    FORMAT, VERSION = TABLE_FORMAT, TABLE_VERSION
    NAME, COLUMN, METRIC = "BLEU table", "language", "BLEU"
    LOWER, UPPER, UNIT, SCALE, DECIMALS = 0.0, 100.0, "points", 1.0, BLEU_DECIMALS
    FACT_ROWS = (
        FactRow(
            "hours",
            HOURS_ROW,
            lambda hours, compact: format_hours(hours),
            _check_hours,
            above=True,
            optional=True,
            name="training hours",
        ),
    )

    def __init__(self, title: str = ""):
        super().__init__(title, self.METRIC)

    def add(self, model: str, language: str, bleu: float, hours: float | None = None) -> None:
        """Record ``model``'s BLEU (0-100) on ``language`` (and its training hours)."""
        super().add(model, language, float(bleu), hours=hours)

    @property
    def languages(self) -> list[str]:
        """Column names (Common Voice locales), in the order they were first added."""
        return self.columns

    def heading(self, column: str) -> str:
        return column_name(column)

    def _body(self) -> dict:
        return {
            "hours": {lang: info["hours"] for lang, info in self._columns.items()},
            "bleu": {
                model: {lang: cell[self.METRIC] for lang, cell in cells.items()}
                for model, cells in self._results.items()
            },
        }

    @classmethod
    def _from_body(cls, data: Mapping) -> BleuTable:
        table = cls(data.get("title", ""))
        for lang, hours in data["hours"].items():
            table._restore_column(lang, {"hours": hours})
        for model, cells in data["bleu"].items():
            for lang, bleu in cells.items():
                table.add(model, lang, bleu)
        return table


__all__ = ["BleuTable", "bleu_by_language", "corpus_bleu"]
