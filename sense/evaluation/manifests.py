"""Retrieval manifests: one prepared language pair per folder.

A pair folder holds ``query.json`` and ``search.json`` (SpeechBrain-style
dicts keyed by entry id, in database order), ``dropped.tsv`` (every item left
out, with the reason) and a stamp of the options it was prepared with. An
audio entry is ``{"modality": "audio", "path", "start", "duration", "lang"}``
(``start`` is ``null`` for a whole file), a text entry ``{"modality": "text",
"text", "lang"}``; each query names its translation with ``"target"``, an id
of the search manifest, and :func:`write_pair` refuses a query whose target is
missing, so nothing is ever silently mis-paired.

Example
-------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> query = {"q1": text_entry("hello", "en", target="s1")}
>>> search = {"s1": text_entry("bonjour", "fr")}
>>> _ = write_pair(folder, query, search, PrepReport(name="en-fr"), options={})
>>> q, s, targets = load_pair(folder)
>>> targets.shape
torch.Size([1])
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sense.dataio import AudioError, audio_info
from sense.io import write_json_atomic
from sense.prepare import PreparationReport, done_stamp

logger = logging.getLogger(__name__)

AUDIO = "audio"
TEXT = "text"
#: A segment may run this many seconds past the end of its file (rounding of
#: the offsets in the release) before it is dropped as out of range.
SEGMENT_END_TOLERANCE = 0.05
#: How the manifests and ``metrics.json`` are written: readable, UTF-8 as is.
JSON_STYLE = {"ensure_ascii": False, "indent": 1}


def parse_pair(pair: str) -> tuple[str, str]:
    """Split a language pair ``"x-y"`` into ``("x", "y")``.

    Example
    -------
    >>> parse_pair("fr-en")
    ('fr', 'en')
    """
    parts = str(pair).split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a language pair is written 'x-y' (e.g. 'fr-en'), got {pair!r}")
    return parts[0], parts[1]


def audio_entry(
    path: str,
    lang: str,
    start: float | None = None,
    duration: float | None = None,
    target: str | None = None,
    **extra: Any,
) -> dict:
    """A manifest entry for an audio file or a segment of one.

    Example
    -------
    >>> audio_entry("talk.wav", "en", start=1.5, duration=2.0, target="s3")["modality"]
    'audio'
    """
    entry = {
        "modality": AUDIO,
        "path": os.path.abspath(path),
        "start": None if start is None else float(start),
        "duration": None if duration is None else float(duration),
        "lang": lang,
    }
    if target is not None:
        entry["target"] = target
    entry.update(extra)
    return entry


def text_entry(text: str, lang: str, target: str | None = None, **extra: Any) -> dict:
    """A manifest entry for a sentence.

    Example
    -------
    >>> text_entry("Guten Tag", "de")
    {'modality': 'text', 'text': 'Guten Tag', 'lang': 'de'}
    """
    entry = {"modality": TEXT, "text": text, "lang": lang}
    if target is not None:
        entry["target"] = target
    entry.update(extra)
    return entry


@dataclass
class PrepReport(PreparationReport):
    """Items left out while preparing one language pair, each with its reason.

    The rows of :class:`sense.prepare.PreparationReport` (language, split,
    item, reason), written as ``dropped.tsv`` in the pair folder, with the
    pair's name for the log.

    Example
    -------
    >>> report = PrepReport(name="fr-en")
    >>> report.add("fr", "test", "utt1", "audio file missing: /data/utt1.ogg")
    >>> report.summary()
    'fr-en: 1 item(s) dropped (1 x audio file missing)'
    """

    name: str = ""

    def summary(self) -> str:
        """One line: how many items were dropped, per reason (up to its first colon)."""
        if not self.rows:
            return f"{self.name}: nothing dropped"
        counts: dict[str, int] = {}
        for row in self.rows:
            key = row["reason"].split(":", 1)[0]
            counts[key] = counts.get(key, 0) + 1
        reasons = ", ".join(f"{n} x {why}" for why, n in sorted(counts.items()))
        return f"{self.name}: {len(self.rows)} item(s) dropped ({reasons})"


class AudioChecker:
    """Validate audio files and segments once per file (headers only).

    ``check`` returns ``None`` when the file (or the segment
    ``[start, start + duration]``) can be read, else the reason it cannot.

    Example
    -------
    >>> AudioChecker().check("/no/such/file.wav")
    'audio file missing'
    """

    def __init__(self, tolerance: float = SEGMENT_END_TOLERANCE):
        self.tolerance = tolerance
        self._info: dict[str, tuple[float, str | None]] = {}

    def duration(self, path: str) -> float | None:
        """Length of the file in seconds, ``None`` when it is not usable."""
        length, _ = self._lookup(path)
        return length

    def _lookup(self, path: str) -> tuple[float | None, str | None]:
        if path not in self._info:
            try:
                frames, rate = audio_info(path)
            except AudioError as err:
                problem = "audio file missing" if err.problem == "no such file" else err.problem
                self._info[path] = (None, problem)
            else:
                if frames <= 0:
                    self._info[path] = (None, "empty audio")
                else:
                    self._info[path] = (frames / rate, None)
        return self._info[path]

    def check(
        self, path: str, start: float | None = None, duration: float | None = None
    ) -> str | None:
        length, problem = self._lookup(path)
        if problem is not None:
            return problem
        if start is None and duration is None:
            return None
        start = start or 0.0
        if start < 0 or (duration is not None and duration <= 0):
            return f"invalid segment: start {start}, duration {duration}"
        end = start + (duration or 0.0)
        if start >= length or end > length + self.tolerance:
            return (
                f"segment beyond the end of the audio: [{start:.2f}, {end:.2f}] s of {length:.2f} s"
            )
        return None


def read_json(path: str) -> Any:
    """The content of a JSON file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_entry(side: str, item: str, entry: Mapping) -> None:
    modality = entry.get("modality")
    if modality == AUDIO:
        if not entry.get("path"):
            raise ValueError(f"{side} entry {item!r}: audio entry without a path")
    elif modality == TEXT:
        if not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ValueError(f"{side} entry {item!r}: text entry without text")
    else:
        raise ValueError(f"{side} entry {item!r}: modality must be 'audio' or 'text'")


def write_pair(
    folder: str,
    query: Mapping[str, dict],
    search: Mapping[str, dict],
    report: PrepReport,
    options: Mapping[str, Any],
) -> str:
    """Write a prepared language pair (``query.json``, ``search.json``, ``dropped.tsv``).

    Every query must name an existing search entry in ``"target"``: a query
    without one is a bug of the preparation and raises, it is never written.
    The report is written and logged first, so a pair with nothing left still
    says why. A stamp of ``options`` is written last: :func:`pair_is_prepared`
    then skips the work on a re-run with the same options.

    Returns
    -------
    str
        ``folder``.

    Raises
    ------
    ValueError
        If no query is left, or a query's target is not in the search manifest.
    """
    name = report.name or os.path.basename(os.path.normpath(folder))
    os.makedirs(folder, exist_ok=True)
    report_path = os.path.join(folder, "dropped.tsv")
    report.write(report_path)
    log = logger.warning if len(report) else logger.info
    log("%s (details in %s)", report.summary(), report_path)
    if not query:
        raise ValueError(
            f"{name}: no query left to evaluate; {report.summary()}; see {report_path}"
        )
    if not search:
        raise ValueError(f"{name}: the search database is empty")
    for item, entry in query.items():
        _check_entry("query", item, entry)
        if entry.get("target") not in search:
            raise ValueError(
                f"{name}: query {item!r} names target {entry.get('target')!r}, "
                "which is not in the search manifest"
            )
    for item, entry in search.items():
        _check_entry("search", item, entry)
    write_json_atomic(os.path.join(folder, "query.json"), dict(query), **JSON_STYLE)
    write_json_atomic(os.path.join(folder, "search.json"), dict(search), **JSON_STYLE)
    _, _, mark_done = done_stamp(folder, dict(options))
    mark_done()
    return folder


def pair_is_prepared(folder: str, options: Mapping[str, Any]) -> bool:
    """True when ``folder`` holds a complete preparation made with ``options``."""
    _, is_done, _ = done_stamp(folder, dict(options))
    manifests = ("query.json", "search.json")
    return is_done() and all(os.path.isfile(os.path.join(folder, n)) for n in manifests)


def load_pair(folder: str) -> tuple[dict, dict, torch.Tensor]:
    """Read a prepared pair: query and search manifests and the target indices.

    Returns
    -------
    query, search : dict
        Manifests in database order.
    targets : torch.Tensor
        [Nq] int64: position in ``search`` of each query's translation.
    """
    for name in ("query.json", "search.json"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"{folder}: no {name}; run the preparation first")
    query = read_json(os.path.join(folder, "query.json"))
    search = read_json(os.path.join(folder, "search.json"))
    position = {item: i for i, item in enumerate(search)}
    missing = [q for q, e in query.items() if e.get("target") not in position]
    if missing:
        raise ValueError(
            f"{folder}: {len(missing)} query(ies) name a target missing from search.json "
            f"(first: {missing[0]!r})"
        )
    targets = torch.tensor([position[e["target"]] for e in query.values()], dtype=torch.int64)
    return query, search, targets


def read_tsv(path: str, header: bool = False) -> tuple[list[str] | None, list[list[str]]]:
    """Rows of a tab-separated file, no quoting (the releases use none)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if header:
        return (rows[0] if rows else []), rows[1:]
    return None, rows
