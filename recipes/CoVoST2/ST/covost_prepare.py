"""Prepare CoVoST 2 X -> EN speech translation from its release files.

CoVoST 2 is Common Voice audio with translations. The release gives, per
source language, ``covost_v2.<src>_en.tsv`` (columns ``path``, ``sentence``,
``translation``, ``split``; tab-separated, no quoting, backslash escapes);
the audio and transcripts come from the Common Voice release
(``<cv>/<src>/validated.tsv`` and ``<cv>/<src>/clips/*.mp3``). As the
official ``get_covost_splits.py`` does, the two are joined on ``path`` (the
transcript and ``client_id`` from ``validated.tsv``, the translation and the
split from the CoVoST file) and the rows are split into train (``train`` and
``train_covost``), dev and test.

Clips are decoded to 16 kHz mono FLAC by the Common Voice preparation's
building blocks (:mod:`sense.prepare`: parallel, resumable). Manifests
``train.csv``, ``dev.csv``, ``test.csv`` get the columns ``ID, duration, wav,
language, transcript, translation``; ``hours.json`` holds the training hours
of each language. A row that cannot be used (missing or unreadable clip, too
short, empty translation, not in ``validated.tsv``, unknown split, malformed
line) is left out and listed with its reason in ``preparation_report.tsv``;
every good row is kept.

Example
-------
    python covost_prepare.py /data/cv-corpus-4 /data/covost_tsv /data/covost_prepared \
        --languages fr de es --workers 8
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections import defaultdict

from sense.io import write_text_atomic
from sense.prepare import PreparationReport, convert_many, done_stamp, write_manifest

# The Common Voice preparation of the SENSE recipe reads the languages file.
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../CommonVoice/SENSE")
)
from commonvoice_prepare import read_languages as read_cv_languages  # noqa: E402

logger = logging.getLogger(__name__)

#: The 21 X -> EN source languages of CoVoST 2 (Common Voice locale codes).
XX_EN_LANGUAGES = "fr de es ca it ru zh-CN pt fa et mn nl tr ar sv-SE lv sl ta ja id cy".split()
TARGET = "en"
SPLITS = ("train", "dev", "test")
#: CoVoST ``split`` values of each split (extra training rows go to train).
SPLIT_VALUES = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}
MANIFEST_FIELDS = ("ID", "duration", "wav", "language", "transcript", "translation")
REPORT_NAME = "preparation_report.tsv"
HOURS_NAME = "hours.json"
SECONDS_PER_HOUR = 3600.0


def read_release_tsv(path: str, columns: tuple[str, ...], report, language: str) -> list[dict]:
    """Rows of a CoVoST / Common Voice TSV file (no quoting, backslash escapes).

    A line whose field count differs from the header's is reported as
    malformed and skipped.

    Raises
    ------
    FileNotFoundError, ValueError
        The file is missing, or lacks one of ``columns``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header = next(reader, None) or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: no column {missing} (header: {header})")
        rows = []
        for number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                report.add(language, "-", f"{os.path.basename(path)}:{number}", "malformed line")
                continue
            rows.append(dict(zip(header, fields)))
        return rows


def read_languages(languages) -> list[str]:
    """Source languages from a list or a languages file, checked against CoVoST 2's."""
    codes = read_cv_languages(languages)
    unknown = sorted(set(codes) - set(XX_EN_LANGUAGES))
    if unknown:
        raise ValueError(
            f"not CoVoST 2 X->EN source languages: {unknown}; choose among {XX_EN_LANGUAGES}"
        )
    return codes


def join_language(
    data_folder: str, covost_folder: str, language: str, report: PreparationReport
) -> dict[str, list[dict]]:
    """One language's rows of each split: ``validated.tsv`` joined with the CoVoST file."""
    validated = read_release_tsv(
        os.path.join(data_folder, language, "validated.tsv"),
        ("path", "sentence", "client_id"),
        report,
        language,
    )
    by_path = {row["path"]: row for row in validated}
    covost = read_release_tsv(
        os.path.join(covost_folder, f"covost_v2.{language}_{TARGET}.tsv"),
        ("path", "translation", "split"),
        report,
        language,
    )
    split_of = {value: split for split, values in SPLIT_VALUES.items() for value in values}
    rows = defaultdict(list)
    for row in covost:
        clip = row["path"]
        split = split_of.get(row["split"])
        if split is None:
            report.add(language, row["split"] or "-", clip, f"unknown split {row['split']!r}")
            continue
        cv = by_path.get(clip)
        if cv is None:
            report.add(language, split, clip, "not in validated.tsv")
            continue
        if not row["translation"].strip():
            report.add(language, split, clip, "empty translation")
            continue
        rows[split].append(
            {
                "clip": clip,
                "transcript": cv["sentence"].strip(),
                "translation": row["translation"].strip(),
                "client_id": cv["client_id"],
            }
        )
    return rows


def prepare_covost(
    data_folder: str,
    covost_folder: str,
    save_folder: str,
    languages=XX_EN_LANGUAGES,
    splits=SPLITS,
    sample_rate: int = 16000,
    workers: int = 1,
    min_duration: float = 0.1,
) -> dict:
    """Prepare CoVoST 2 X -> EN for ``languages``.

    Parameters
    ----------
    data_folder : str
        Common Voice release root (``<data_folder>/<lang>/validated.tsv``,
        ``<data_folder>/<lang>/clips/``).
    covost_folder : str
        Folder of the ``covost_v2.<lang>_en.tsv`` files (extracted from
        their ``.tsv.tar.gz``).
    save_folder : str
        Converted audio (``wavs/<lang>/``), manifests, hours and report.
    languages : list of str or str
        Source languages, or a file listing them.
    splits : sequence of str
        Among ``train``, ``dev``, ``test``.
    sample_rate, workers, min_duration
        Rate of the converted audio, parallel decoders, shortest clip kept (s).

    Returns
    -------
    dict
        ``{"manifests": {split: path}, "report": path, "hours": {lang: h}, ...}``
    """
    codes = read_languages(languages)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; use {SPLITS}")
    settings = {
        "data_folder": os.path.abspath(data_folder),
        "covost_folder": os.path.abspath(covost_folder),
        "languages": codes,
        "splits": list(splits),
        "sample_rate": sample_rate,
        "min_duration": min_duration,
    }
    manifests = {split: os.path.join(save_folder, f"{split}.csv") for split in splits}
    report_path = os.path.join(save_folder, REPORT_NAME)
    hours_path = os.path.join(save_folder, HOURS_NAME)
    _, is_done, mark_done = done_stamp(save_folder, settings)
    if is_done() and all(os.path.isfile(p) for p in (*manifests.values(), hours_path)):
        logger.info("CoVoST 2 already prepared in %s: skipping", save_folder)
        with open(hours_path, encoding="utf-8") as f:
            hours = json.load(f)
        return {"manifests": manifests, "report": report_path, "hours": hours, "skipped": True}
    for folder, what in ((data_folder, "Common Voice release"), (covost_folder, "CoVoST 2 TSV")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: no such {what} folder")

    report = PreparationReport()
    joined = {lang: join_language(data_folder, covost_folder, lang, report) for lang in codes}
    kept, seconds = {}, defaultdict(float)
    for split in splits:
        rows, jobs = [], []
        for lang in codes:
            for item in joined[lang].get(split, []):
                stem = os.path.splitext(item["clip"])[0]
                src = os.path.join(data_folder, lang, "clips", item["clip"])
                dst = os.path.join(save_folder, "wavs", lang, stem + ".flac")
                rows.append({**item, "ID": f"{lang}_{stem}", "wav": dst, "language": lang})
                jobs.append((src, dst))
        results = convert_many(jobs, sample_rate, workers=workers, desc=f"decoding {split}")
        good = []
        for row, (duration, error) in zip(rows, results):
            if error is None and duration < min_duration:
                error = f"shorter than {min_duration} s"
            if error is not None:
                report.add(row["language"], split, row["clip"], error)
                continue
            row["duration"] = f"{duration:.3f}"
            if split == "train":
                seconds[row["language"]] += duration
            good.append(row)
        write_manifest(manifests[split], good, MANIFEST_FIELDS)
        kept[split] = len(good)
        logger.info("%s: %d utterances kept", split, len(good))

    hours = {lang: seconds[lang] / SECONDS_PER_HOUR for lang in codes}
    write_text_atomic(hours_path, json.dumps(hours, indent=2) + "\n")
    report.write(report_path)
    if len(report):
        logger.warning("%d rows left out, see %s: %s", len(report), report_path, report.reasons())
    mark_done()
    return {
        "manifests": manifests,
        "report": report_path,
        "hours": hours,
        "left_out": len(report),
        "kept": kept,
        "skipped": False,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_folder", help="Common Voice release root")
    parser.add_argument("covost_folder", help="folder of the covost_v2.<src>_en.tsv files")
    parser.add_argument("save_folder")
    parser.add_argument("--languages", nargs="+", default=list(XX_EN_LANGUAGES))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--min_duration", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    summary = prepare_covost(
        args.data_folder,
        args.covost_folder,
        args.save_folder,
        args.languages,
        args.splits,
        workers=args.workers,
        min_duration=args.min_duration,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
