"""Preparation side of the SLU manifests: release annotations -> transcript and spans.

Every spoken language understanding recipe (SLURP, Speech-MASSIVE, MSNER,
TARIC-SLU) writes the SLU manifests of :mod:`sense.slu.data` (``spans``: a
JSON list of ``[label, begin, end]`` character offsets into ``transcript``).
This module holds what those preparations share and what is dataset-free:
the three annotation notations they read (SLURP / MASSIVE bracket markup
``"[type : filler]"``, SpeechBrain's concept notation ``"<concept> words >"``,
spans given as token positions), the stricter span checks a prepared row
passes (values non-empty, without outer spaces; labels one word), and the
writing of a split's manifests with the report of the rows left out.

Example
-------
>>> text, spans = parse_bracket_markup("wake me up at [time : five am] please")
>>> text, spans
('wake me up at five am please', [('time', 14, 21)])
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from sense.prepare import PreparationReport, done_stamp
from sense.slu.data import write_slu_manifest
from sense.slu.markup import check_spans

logger = logging.getLogger(__name__)

REPORT_NAME = "dropped.tsv"
OPEN, CLOSE, SEPARATOR = "[", "]", ":"

Span = tuple[str, int, int]


class MarkupError(ValueError):
    """An annotation that cannot be turned into a transcript and spans."""


def label_name(label: str) -> str:
    """A label as the manifests spell it: words joined by ``_``.

    Example
    -------
    >>> label_name(" geopolitical  area ")
    'geopolitical_area'
    """
    return "_".join(label.split())


def clean_spans(transcript: str, spans: Iterable[Sequence]) -> list[Span]:
    """``spans`` sorted and checked for a prepared row; as tuples.

    On top of :func:`sense.slu.markup.check_spans` (labels one word, offsets
    in range, no overlap), a prepared span has a value: not empty, without
    outer white space.

    Raises
    ------
    MarkupError
        Naming the span and the problem.

    Example
    -------
    >>> clean_spans("call mom now", [["person", 5, 8]])
    [('person', 5, 8)]
    >>> clean_spans("call mom now", [["person", 4, 8]])
    Traceback (most recent call last):
    ...
    sense.slu.prepare.MarkupError: span ['person', 4, 8] starts or ends with a space: ' mom'
    """
    out = sorted((tuple(s) for s in spans), key=lambda s: tuple(s[1:]))
    try:
        check_spans(transcript, [list(s) for s in out])
    except ValueError as err:
        raise MarkupError(str(err)) from None
    for label, begin, end in out:
        value = transcript[begin:end]
        if not value.strip() or value != value.strip():
            what = "is empty" if not value.strip() else f"starts or ends with a space: {value!r}"
            raise MarkupError(f"span {[label, begin, end]} {what}")
    return out


class _Builder:
    """A transcript built piece by piece, whitespace runs collapsed to one space."""

    def __init__(self):
        self.chars: list[str] = []

    def add(self, text: str) -> None:
        for ch in text:
            if ch.isspace():
                if self.chars and self.chars[-1] != " ":
                    self.chars.append(" ")
            else:
                self.chars.append(ch)

    def __len__(self) -> int:
        return len(self.chars)

    def text(self) -> str:
        return "".join(self.chars).rstrip()


def parse_bracket_markup(annotation: str) -> tuple[str, list[Span]]:
    """Transcript and spans of the SLURP / Speech-MASSIVE markup ``[type : filler]``.

    Brackets are removed and each filler becomes a span labelled with its
    type (words joined by ``_``); runs of white space become one space (inside fillers too) and the
    transcript is stripped.

    Raises
    ------
    MarkupError
        On an unbalanced or nested bracket, a slot without ``:``, or an
        empty type or filler.

    Example
    -------
    >>> parse_bracket_markup("[date : tomorrow]  at [time : ten]")
    ('tomorrow at ten', [('date', 0, 8), ('time', 12, 15)])
    """
    out = _Builder()
    spans: list[Span] = []
    pos = 0
    while pos < len(annotation):
        start = annotation.find(OPEN, pos)
        stray = annotation.find(CLOSE, pos, None if start < 0 else start)
        if stray >= 0:
            raise MarkupError(f"unmatched {CLOSE!r} at character {stray}")
        if start < 0:
            out.add(annotation[pos:])
            break
        out.add(annotation[pos:start])
        end = annotation.find(CLOSE, start + 1)
        if end < 0:
            raise MarkupError(f"unclosed {OPEN!r} at character {start}")
        inner = annotation[start + 1 : end]
        if OPEN in inner:
            raise MarkupError(f"nested {OPEN!r} in the slot at character {start}")
        if SEPARATOR not in inner:
            raise MarkupError(f"slot {inner!r} has no {SEPARATOR!r} between type and filler")
        label, filler = (part.strip() for part in inner.split(SEPARATOR, 1))
        if not label:
            raise MarkupError(f"slot {inner!r} has an empty type")
        if not filler:
            raise MarkupError(f"slot {label!r} has an empty filler")
        begin = len(out)
        out.add(filler)
        spans.append((label_name(label), begin, len(out)))
        pos = end + 1
    return out.text(), clean_spans(out.text(), spans)


CONCEPT_OPEN, CONCEPT_CLOSE = "<", ">"


def parse_concept_markup(
    annotation: str, tag_in: str = CONCEPT_OPEN, tag_out: str = CONCEPT_CLOSE
) -> tuple[str, list[Span]]:
    """Transcript and spans of the concept notation ``<concept> words >``.

    The notation of SpeechBrain's SLU recipes (MEDIA) and of its
    ``ErrorRateStats(extract_concepts_values=True, tag_in="<", tag_out=">")``:
    a word ``<label>`` opens a concept, the words up to the next ``>`` (a
    word of its own, or the end of the last word) are its value.

    Raises
    ------
    MarkupError
        On a concept opened inside another, never closed, closed without
        being opened, or with no words.

    Example
    -------
    >>> parse_concept_markup("je pars <ville> de tunis > <jour> demain>")
    ('je pars de tunis demain', [('ville', 8, 16), ('jour', 17, 23)])
    """
    words: list[str] = []
    spans: list[Span] = []
    label, first = None, 0
    length = -1  # characters of " ".join(words), kept as words are added

    def add(word: str) -> None:
        nonlocal length
        words.append(word)
        length += len(word) + 1

    for token in annotation.split():
        if (
            len(token) > len(tag_in) + len(tag_out)
            and token.startswith(tag_in)
            and token.endswith(tag_out)
        ):
            if label is not None:
                raise MarkupError(f"concept {token!r} opened inside {label!r}")
            label, first = label_name(token[len(tag_in) : -len(tag_out)]), len(words)
            continue
        closes = token.endswith(tag_out)
        word = token[: -len(tag_out)] if closes else token
        if tag_in in word or tag_out in word:
            raise MarkupError(f"stray tag in {token!r}")
        if word:
            add(word)
        if closes:
            if label is None:
                raise MarkupError(f"{tag_out!r} closes no concept (in {token!r})")
            if first == len(words):
                raise MarkupError(f"concept {label!r} has no words")
            begin = sum(len(w) + 1 for w in words[:first])
            spans.append((label, begin, length))
            label = None
    if label is not None:
        raise MarkupError(f"concept {label!r} is never closed")
    text = " ".join(words)
    return text, clean_spans(text, spans)


def spans_from_tokens(
    tokens: Sequence[str], entities: Iterable[tuple[str, Sequence[int]]]
) -> tuple[str, list[Span]]:
    """Transcript and spans from tokens that join into the text (MSNER's ``input``).

    ``tokens`` carry their own leading spaces (``["Je", " vois", " Paris"]``);
    each entity is ``(label, token positions)``, positions consecutive. A
    span covers its tokens, without their outer spaces; a label's words are
    joined by ``_`` (:func:`label_name`).

    Raises
    ------
    MarkupError
        When positions are empty, out of range or not consecutive.

    Example
    -------
    >>> spans_from_tokens(["Je", " vois", " Paris", "."], [("place", [2])])
    ('Je vois Paris.', [('place', 8, 13)])
    """
    starts = []
    offset = 0
    for tok in tokens:
        starts.append(offset)
        offset += len(tok)
    raw = "".join(tokens)
    lead = len(raw) - len(raw.lstrip())
    text = raw.strip()
    spans: list[Span] = []
    for label, positions in entities:
        positions = list(positions)
        if not positions:
            raise MarkupError(f"entity {label!r} has no token positions")
        if any(not isinstance(p, int) or not 0 <= p < len(tokens) for p in positions):
            raise MarkupError(
                f"entity {label!r}: positions {positions} outside {len(tokens)} tokens"
            )
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise MarkupError(f"entity {label!r}: positions {positions} are not consecutive")
        first, last = positions[0], positions[-1]
        begin, end = starts[first], starts[last] + len(tokens[last])
        value = raw[begin:end]
        begin += len(value) - len(value.lstrip())
        end -= len(value) - len(value.rstrip())
        if begin >= end:
            raise MarkupError(f"entity {label!r}: its tokens {positions} are blank")
        spans.append((label_name(label), begin - lead, end - lead))
    return text, clean_spans(text, spans)


def read_jsonl(
    path: str, language: str, split: str, report: PreparationReport
) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of a JSON-lines file; a malformed line is reported, not raised.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mktemp(suffix=".jsonl")
    >>> _ = open(path, "w").write('{"a": 1}\\n{oops\\n')
    >>> report = PreparationReport()
    >>> list(read_jsonl(path, "en", "train", report)), report.reasons()
    ([(1, {'a': 1})], {'malformed line': 1})
    """
    with open(path, encoding="utf-8-sig") as f:  # a byte-order mark is not part of line 1
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                report.add(language, split, f"{path}:{n}", "malformed line")
                continue
            yield n, entry


def slu_row(
    item: str, duration: float, wav: str, language: str, transcript: str, spans: Iterable[Span]
) -> dict:
    """One manifest row (spans checked with :func:`clean_spans`)."""
    return {
        "ID": item,
        "duration": f"{duration:.3f}",
        "wav": wav,
        "language": language,
        "transcript": transcript,
        "spans": [list(s) for s in clean_spans(transcript, spans)],
    }


def write_slu_manifests(
    folder: str, rows: Mapping[str, Sequence[dict]], report: PreparationReport, name: str = ""
) -> dict[str, str]:
    """Write ``<folder>/<split>.csv`` for each split and ``dropped.tsv``; returns the paths.

    A second row with an ID already written in the same split is left out and
    reported: SpeechBrain's datasets key rows by ID. The counts, and the
    reasons rows were left out, are logged under ``name``.
    """
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for split, split_rows in rows.items():
        seen: set[str] = set()
        kept = []
        for row in split_rows:
            if row["ID"] in seen:
                report.add(row["language"], split, row["ID"], "duplicate ID")
                continue
            seen.add(row["ID"])
            kept.append(row)
        paths[split] = os.path.join(folder, f"{split}.csv")
        write_slu_manifest(paths[split], kept)
        logger.info("%s %s: %d rows -> %s", name, split, len(kept), paths[split])
    report.write(os.path.join(folder, REPORT_NAME))
    if len(report):
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report.reasons().items()))
        logger.warning(
            "%s: %d items left out (%s), listed in %s",
            name,
            len(report),
            reasons,
            os.path.join(folder, REPORT_NAME),
        )
    return paths


def parse_or_report(
    parse: Callable[[], tuple[str, list[Span]]],
    report: PreparationReport,
    language: str,
    split: str,
    item: str,
) -> tuple[str, list[Span]] | None:
    """``parse()``'s transcript and spans; ``None``, reported, when it fails or is empty.

    Example
    -------
    >>> from functools import partial
    >>> report = PreparationReport()
    >>> parse_or_report(partial(parse_bracket_markup, "[a : "), report, "en", "train", "u1")
    >>> report.rows[0]["reason"]
    "markup does not parse: unclosed '[' at character 0"
    """
    try:
        transcript, spans = parse()
    except MarkupError as err:
        report.add(language, split, item, f"markup does not parse: {err}")
        return None
    if not transcript:
        report.add(language, split, item, "empty transcript")
        return None
    return transcript, spans


def prepare_manifests(
    folder: str,
    settings: dict,
    build: Callable[[PreparationReport], Mapping[str, Sequence[dict]]],
    name: str,
    splits: Sequence[str] = ("train", "dev", "test"),
    skip_prep: bool = False,
) -> dict[str, str]:
    """Write ``folder``'s manifests with ``build(report)`` unless already done with ``settings``.

    ``build`` returns ``{split: rows}`` (:func:`slu_row`) and reports what it
    leaves out; the manifests and ``dropped.tsv`` are written
    (:func:`write_slu_manifests`) and a stamp records ``settings``, so that a
    second run with the same settings does nothing. Returns ``{split: csv path}``.
    """
    paths = {s: os.path.join(folder, f"{s}.csv") for s in splits}
    _, is_done, mark_done = done_stamp(folder, settings)
    if skip_prep or is_done():
        return paths
    report = PreparationReport()
    paths = write_slu_manifests(folder, build(report), report, name)
    mark_done()
    return paths
