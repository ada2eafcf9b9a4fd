"""TARIC-SLU slot-filling manifests (SENSE paper, Table VII, TN).

TARIC-SLU (Mdhaffar et al., LREC-COLING 2024) is Tunisian Arabic speech
from railway-station dialogues, annotated with 62 semantic concepts. Its
public page (``huggingface.co/datasets/Elyadata/TARIC-SLU``) holds only a
README: the corpus comes from its authors, for their SpeechBrain recipe. What
this preparation reads, per split, is a table in that recipe's convention
(see README.md, "Layout read"):

    <data_folder>/train.csv   dev.csv   test.csv      (or .tsv; dev may be valid.*)

with a header holding at least

- ``ID``: the utterance id;
- ``wav``: its audio file, absolute or relative to ``data_folder`` (any format
  soundfile reads; it is used in place);
- ``semantics`` (``annotation_column``): the transcript in SpeechBrain's SLU
  concept notation, ``<concept> words >``
  (:func:`sense.slu.prepare.parse_concept_markup`), e.g. (concept names
  illustrative) ``"نحب <command-tache> نقطع > تسكرة لـ <ville-arrivee> تونس >"``.

Writes ``<save_folder>/{train,dev,test}.csv`` and ``dropped.tsv``.

Example
-------
>>> prepare_taric("/data/TARIC-SLU", "results/taric/prepared")  # doctest: +SKIP
{'train': 'results/taric/prepared/train.csv', 'dev': ..., 'test': ...}
"""

from __future__ import annotations

import csv
import os
from functools import partial

from sense.evaluation import AudioChecker
from sense.prepare import PreparationReport
from sense.slu.prepare import (
    parse_concept_markup,
    parse_or_report,
    prepare_manifests,
    slu_row,
)

LANGUAGE = "aeb"  # ISO 639-3: Tunisian Arabic
# manifest split -> file stems looked for, in this order
RELEASE_SPLITS = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
EXTENSIONS = {".csv": ",", ".tsv": "\t"}
REQUIRED = ("ID", "wav")


def find_table(data_folder: str, split: str) -> tuple[str, str]:
    """``(path, delimiter)`` of a split's table."""
    tried = []
    for stem in RELEASE_SPLITS[split]:
        for ext, delimiter in EXTENSIONS.items():
            path = os.path.join(data_folder, stem + ext)
            tried.append(path)
            if os.path.isfile(path):
                return path, delimiter
    raise FileNotFoundError(f"no TARIC-SLU {split} table: looked for {', '.join(tried)}")


def split_rows(
    path: str,
    delimiter: str,
    split: str,
    data_folder: str,
    annotation_column: str,
    checker: AudioChecker,
    report: PreparationReport,
) -> list[dict]:
    """Manifest rows of one split's table."""
    # utf-8-sig: a table saved by a spreadsheet may begin with a byte-order mark
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in (*REQUIRED, annotation_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: the header lacks {', '.join(missing)} (got {reader.fieldnames})"
            )
        rows = []
        for n, row in enumerate(reader, start=2):
            item = (row["ID"] or "").strip()
            if not item or None in row or None in row.values():
                report.add(LANGUAGE, split, f"{path}:{n}", "malformed line")
                continue
            parsed = parse_or_report(
                partial(parse_concept_markup, row[annotation_column]), report, LANGUAGE, split, item
            )
            if parsed is None:
                continue
            transcript, spans = parsed
            wav = os.path.join(data_folder, row["wav"].strip())
            problem = checker.check(wav)
            if problem is not None:
                report.add(LANGUAGE, split, wav, problem)
                continue
            rows.append(slu_row(item, checker.duration(wav), wav, LANGUAGE, transcript, spans))
    return rows


def prepare_taric(
    data_folder: str,
    save_folder: str,
    annotation_column: str = "semantics",
    skip_prep: bool = False,
) -> dict[str, str]:
    """Write the TARIC-SLU manifests; returns ``{split: csv path}``.

    Parameters
    ----------
    data_folder : str
        The folder of the split tables (module docstring).
    save_folder : str
        Where ``train.csv``, ``dev.csv``, ``test.csv`` and ``dropped.tsv`` go.
    annotation_column : str
        The column holding the ``<concept> words >`` transcript.

    A row whose annotation does not parse, with an empty transcript, or whose
    audio is missing or unreadable is left out and listed with the reason.
    Running again with the same settings does nothing.
    """
    tables = {split: find_table(data_folder, split) for split in RELEASE_SPLITS}
    settings = {
        "tables": {s: os.path.abspath(p) for s, (p, _) in tables.items()},
        "annotation_column": annotation_column,
    }

    def build(report: PreparationReport) -> dict[str, list[dict]]:
        checker = AudioChecker()
        return {
            split: split_rows(path, delim, split, data_folder, annotation_column, checker, report)
            for split, (path, delim) in tables.items()
        }

    return prepare_manifests(save_folder, settings, build, "TARIC-SLU", skip_prep=skip_prep)
