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

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from sense.io import write_text_atomic
from sense.results import format_grid_csv, format_grid_markdown, table_stem

#: sacrebleu's defaults, spelled out: what the paper's BLEU means.
BLEU_TOKENIZE = "13a"
BLEU_DECIMALS = 2
HOURS_ROW = "Duration (h)"
TABLE_FORMAT = "sense.bleu_table"
TABLE_VERSION = 1
MISSING = "-"


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


class BleuTable:
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

    def __init__(self, title: str = ""):
        self.title = title
        self._hours: dict[str, float | None] = {}
        self._scores: dict[str, dict[str, float]] = {}

    def add(self, model: str, language: str, bleu: float, hours: float | None = None) -> None:
        """Record ``model``'s BLEU (0-100) on ``language`` (and its training hours)."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        bleu = float(bleu)
        if not math.isfinite(bleu) or not 0.0 <= bleu <= 100.0:
            raise ValueError(f"BLEU must lie in [0, 100], got {bleu}")
        known = self._hours.get(language)
        if hours is not None:
            if known is not None and not math.isclose(known, float(hours)):
                raise ValueError(
                    f"{language}: {known} training hours in the table, {hours} for {model!r}"
                )
            known = float(hours)
        self._hours[language] = known
        self._scores.setdefault(model, {})[language] = bleu

    @property
    def languages(self) -> list[str]:
        return list(self._hours)

    @property
    def models(self) -> list[str]:
        return list(self._scores)

    def value(self, model: str, language: str) -> float | None:
        return self._scores.get(model, {}).get(language)

    def _grid(self) -> list[list[str]]:
        rows = [["BLEU", *(column_name(lang) for lang in self.languages)]]
        if any(h is not None for h in self._hours.values()):
            rows.append([HOURS_ROW, *(format_hours(h) for h in self._hours.values())])
        for model in self.models:
            cells = [self.value(model, lang) for lang in self.languages]
            rows.append(
                [model, *(MISSING if v is None else f"{v:.{BLEU_DECIMALS}f}" for v in cells)]
            )
        return rows

    def to_markdown(self, title: bool = True) -> str:
        return format_grid_markdown(self._grid(), self.title if title else "")

    def to_csv(self) -> str:
        return format_grid_csv(self._grid())

    def __str__(self) -> str:
        return self.to_markdown()

    def to_dict(self) -> dict:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "title": self.title,
            "hours": self._hours,
            "bleu": self._scores,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BleuTable:
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise ValueError(f"not a BLEU table (expected format {TABLE_FORMAT!r})")
        table = cls(data.get("title", ""))
        table._hours = {k: (None if v is None else float(v)) for k, v in data["hours"].items()}
        for model, cells in data["bleu"].items():
            for lang, bleu in cells.items():
                table.add(model, lang, bleu)
        return table

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write ``<path>.md``, ``<path>.json`` and ``<path>.csv``; the paths by suffix."""
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
    def load(cls, path: str | os.PathLike) -> BleuTable:
        file = table_stem(path).with_name(table_stem(path).name + ".json")
        if not file.is_file():
            raise FileNotFoundError(f"no BLEU table at {file}")
        return cls.from_dict(json.loads(file.read_text(encoding="utf-8")))

    @classmethod
    def open(cls, path: str | os.PathLike, title: str = "") -> BleuTable:
        """The table saved at ``path``, or an empty one (several runs fill one table)."""
        file = table_stem(path).with_name(table_stem(path).name + ".json")
        return cls.load(path) if file.is_file() else cls(title)


__all__ = ["BleuTable", "bleu_by_language", "corpus_bleu"]
