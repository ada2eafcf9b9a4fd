"""MSNER named-entity manifests (SENSE paper, Table V: nl, es, fr, de).

MSNER (Meeus et al., 2024; ``github.com/qmeeus/MSNER``) annotates VoxPopuli
utterances with named entities. Two folders are read:

- ``msner_folder``: the release's JSON-lines files, one per language, split
  and annotation variant, named ``transcript-<lang>-<split>[-ann[-<variant>[-v1]]].jsonl``
  with ``<split>`` in ``train``, ``validation``, ``test`` and ``<variant>``
  ``ontonotes`` (the 18 OntoNotes types, the default) or ``combined`` (the
  release's 8-type variant), e.g. ``transcript-fr-test-ann-ontonotes-v1.jsonl``,
  ``transcript-fr-validation-ann.jsonl``. Each line is one utterance::

      {"id": "20090423-0900-PLENARY-25-fr_20090423-21:47:42_3",
       "input": ["Je", " n", "'", "entrerai", ..., " ALDE", ...],
       "annotation": [{"type": "organization", "entity": [" ALDE"], "position": [21]}, ...]}

  ``input`` holds tokens that join into the transcript (each carries its
  leading space); ``position`` indexes the entity's tokens in ``input``.
- ``voxpopuli_folder``: the VoxPopuli transcribed-speech release as its
  scripts write it (``python -m voxpopuli.get_asr_data --root <root> --lang fr``),
  the audio of an utterance at ``transcribed_data/<lang>/<year>/<id>.ogg``
  (the layout ``../../VoxPopuli/retrieval/voxpopuli_prepare.py`` reads; its
  path function is imported here).

Writes ``<save_folder>/<lang>/{train,dev,test}.csv`` (``dev`` from
``validation``) and ``<save_folder>/<lang>/dropped.tsv``.

Example
-------
>>> prepare_msner("/data/msner", "/data/voxpopuli", "results/msner/prepared")  # doctest: +SKIP
{'nl': {'train': 'results/msner/prepared/nl/train.csv', ...}, ...}
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from functools import partial

# the audio layout is VoxPopuli's: share its path function, never a copy of it
VOXPOPULI_RECIPE = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "VoxPopuli", "retrieval")
)
if VOXPOPULI_RECIPE not in sys.path:
    sys.path.insert(0, VOXPOPULI_RECIPE)

from voxpopuli_prepare import source_audio  # noqa: E402

from sense.evaluation import AudioChecker  # noqa: E402
from sense.prepare import PreparationReport  # noqa: E402
from sense.slu.prepare import (  # noqa: E402
    MarkupError,
    parse_or_report,
    prepare_manifests,
    read_jsonl,
    slu_row,
    spans_from_tokens,
)

logger = logging.getLogger(__name__)

LANGUAGES = ("nl", "es", "fr", "de")
VARIANTS = ("ontonotes", "combined")
# manifest split -> the release's split names, in the order they are looked for
RELEASE_SPLITS = {"train": ("train",), "dev": ("validation", "dev"), "test": ("test",)}
# The 18 OntoNotes entity types, as MSNER spells them.
ONTONOTES_TYPES = (
    "cardinal_number",
    "date",
    "event",
    "facility",
    "geopolitical_area",
    "group",
    "language",
    "law",
    "location",
    "money",
    "ordinal_number",
    "organization",
    "percent",
    "person",
    "product",
    "quantity",
    "time",
    "work_of_art",
)


def annotation_names(lang: str, split: str, variant: str) -> list[str]:
    """File names that may hold ``lang``'s ``split`` in ``variant``, most specific first.

    Example
    -------
    >>> annotation_names("fr", "test", "combined")
    ['transcript-fr-test-ann-combined-v1.jsonl', 'transcript-fr-test-ann-combined.jsonl']
    """
    names = []
    for name in RELEASE_SPLITS[split]:
        stem = f"transcript-{lang}-{name}"
        names += [f"{stem}-ann-{variant}-v1.jsonl", f"{stem}-ann-{variant}.jsonl"]
        if variant == "ontonotes":  # the plain files carry the OntoNotes types
            names += [f"{stem}-ann.jsonl", f"{stem}.jsonl"]
    return names


def find_annotation(msner_folder: str, lang: str, split: str, variant: str) -> str:
    names = annotation_names(lang, split, variant)
    for name in names:
        path = os.path.join(msner_folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{msner_folder}: no MSNER {variant} annotation of {lang} {split} (looked for {', '.join(names)})"
    )


def entities(entry: dict, tokens: list[str]) -> list[tuple[str, list[int]]]:
    """``(type, positions)`` of each annotated entity, checked against its tokens."""
    out = []
    for ann in entry.get("annotation") or []:
        if not isinstance(ann, dict) or not isinstance(ann.get("type"), str):
            raise MarkupError(f"annotation {ann!r} has no type")
        positions = ann.get("position")
        if not isinstance(positions, list):
            raise MarkupError(f"annotation {ann['type']!r} has no position list")
        words = ann.get("entity")
        if words is not None:
            inside = [
                tokens[p] if isinstance(p, int) and 0 <= p < len(tokens) else None
                for p in positions
            ]
            if [w.strip() if isinstance(w, str) else w for w in words] != [
                t.strip() if t is not None else t for t in inside
            ]:
                raise MarkupError(
                    f"entity {words!r} does not match tokens {inside!r} at positions {positions}"
                )
        out.append((ann["type"], positions))
    return out


def parse_entry(entry: dict, tokens: list[str]) -> tuple[str, list]:
    """Transcript and spans of one utterance (:func:`sense.slu.prepare.spans_from_tokens`)."""
    return spans_from_tokens(tokens, entities(entry, tokens))


def split_rows(
    path: str,
    lang: str,
    split: str,
    voxpopuli_folder: str,
    checker: AudioChecker,
    report: PreparationReport,
    unknown_types: set[str] | None = None,
) -> list[dict]:
    """Manifest rows of one annotation file."""
    rows = []
    for n, entry in read_jsonl(path, lang, split, report):
        item = entry.get("id")
        tokens = entry.get("input")
        if not isinstance(item, str) or not item:
            report.add(lang, split, f"{path}:{n}", "malformed line: no id")
            continue
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            report.add(lang, split, item, "malformed line: input is not a list of tokens")
            continue
        parsed = parse_or_report(partial(parse_entry, entry, tokens), report, lang, split, item)
        if parsed is None:
            continue
        transcript, spans = parsed
        wav = source_audio(voxpopuli_folder, lang, item)
        problem = checker.check(wav)
        if problem is not None:
            report.add(lang, split, wav, problem)
            continue
        if unknown_types is not None:
            unknown_types.update(label for label, _, _ in spans if label not in ONTONOTES_TYPES)
        rows.append(slu_row(item, checker.duration(wav), wav, lang, transcript, spans))
    return rows


def prepare_msner(
    msner_folder: str,
    voxpopuli_folder: str,
    save_folder: str,
    languages: Sequence[str] = LANGUAGES,
    variant: str = "ontonotes",
    splits: Sequence[str] = ("train", "dev", "test"),
    skip_prep: bool = False,
) -> dict[str, dict[str, str]]:
    """Write the MSNER manifests of each language; returns ``{lang: {split: csv path}}``.

    Parameters
    ----------
    msner_folder : str
        The folder of the release's ``transcript-*.jsonl`` files.
    voxpopuli_folder : str
        The ``--root`` given to the VoxPopuli scripts (``transcribed_data/`` under it).
    save_folder : str
        Where ``<lang>/{train,dev,test}.csv`` and ``<lang>/dropped.tsv`` go.
    languages : sequence of str
        Any of ``nl``, ``es``, ``fr``, ``de``.
    variant : {"ontonotes", "combined"}
        The 18 OntoNotes types or the release's 8-type variant.
    splits : sequence of str
        ``train``, ``dev``, ``test`` (Table V's zero-shot columns need only ``test``).

    An utterance whose annotation does not fit its tokens, with an empty
    transcript, or whose audio is missing or unreadable is left out and
    listed with the reason. Running again with the same settings does nothing.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    unknown = [s for s in splits if s not in RELEASE_SPLITS]
    if unknown:
        raise ValueError(f"splits must be taken from {tuple(RELEASE_SPLITS)}, got {unknown}")
    out: dict[str, dict[str, str]] = {}
    for lang in languages:
        folder = os.path.join(save_folder, lang)
        files = {s: find_annotation(msner_folder, lang, s, variant) for s in splits}
        settings = {
            "files": {s: os.path.abspath(p) for s, p in files.items()},
            "voxpopuli_folder": os.path.abspath(voxpopuli_folder),
        }

        def build(report: PreparationReport, lang=lang, files=files) -> dict[str, list[dict]]:
            checker = AudioChecker()
            unknown: set[str] | None = set() if variant == "ontonotes" else None
            rows = {
                s: split_rows(p, lang, s, voxpopuli_folder, checker, report, unknown)
                for s, p in files.items()
            }
            if unknown:
                logger.warning("MSNER %s: types outside OntoNotes' 18: %s", lang, sorted(unknown))
            return rows

        out[lang] = prepare_manifests(
            folder, settings, build, f"MSNER {lang}", splits=splits, skip_prep=skip_prep
        )
    return out
