"""Prepare a Common Voice release for SENSE distillation.

Reads a release as distributed (one folder per locale, each with
``train.tsv``, ``dev.tsv``, ``test.tsv``, ``validated.tsv`` and
``clips/*.mp3``), keeps the locales of a languages file, decodes every clip to
16 kHz mono FLAC (in parallel, resumable), and writes SpeechBrain manifests
``train.csv`` / ``dev.csv`` with columns ``ID, duration, wav, language,
transcript``.

A clip that is missing, unreadable or empty, or whose transcript is empty, is
left out and listed with the reason in ``preparation_report.tsv``. A second
run with the same settings does nothing.

Example
-------
    python commonvoice_prepare.py /data/cv-corpus-19.0 /data/cv_prepared \
        --languages languages.txt --workers 8
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys

from sense.prepare import PreparationReport, convert_many, done_stamp, write_manifest

logger = logging.getLogger(__name__)

# Common Voice split file -> manifest name.
SPLITS = {"train": "train", "dev": "dev", "test": "test"}
REPORT_NAME = "preparation_report.tsv"


def read_languages(languages) -> list[str]:
    """Locale codes from a list or a file (one per line, ``#`` starts a comment)."""
    if isinstance(languages, str):
        if not os.path.isfile(languages):
            raise FileNotFoundError(f"{languages}: no such languages file")
        with open(languages, encoding="utf-8") as f:
            codes = [
                line.split("#", 1)[0].split()[0] for line in f if line.split("#", 1)[0].strip()
            ]
    else:
        codes = list(languages)
    if not codes:
        raise ValueError("the languages list is empty")
    return codes


def read_cv_tsv(path: str) -> list[dict]:
    """Rows of a Common Voice split file (tab-separated, header, no quoting).

    Raises
    ------
    ValueError
        When the file lacks the ``path`` or ``sentence`` column.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a Common Voice split file (no column {sorted(missing)})")
        return list(reader)


def prepare_common_voice(
    data_folder: str,
    save_folder: str,
    languages,
    splits=("train", "dev"),
    sample_rate: int = 16000,
    workers: int = 1,
    min_duration: float = 0.1,
) -> dict:
    """Prepare ``splits`` of the ``languages`` found in ``data_folder``.

    Parameters
    ----------
    data_folder : str
        Root of the release (``<data_folder>/<locale>/train.tsv`` ...).
    save_folder : str
        Where converted audio (``wavs/<locale>/``), manifests and the report go.
    languages : str or list of str
        A languages file or a list of Common Voice locale codes.
    splits : sequence of str
        Split files to read (``train``, ``dev``, ``test``).
    sample_rate : int
        Rate of the converted audio.
    workers : int
        Parallel decoding processes.
    min_duration : float
        Clips shorter than this (seconds) are left out and reported.

    Returns
    -------
    dict
        ``{"manifests": {split: path}, "report": path, "left_out": n, "kept": {split: n}}``
    """
    codes = read_languages(languages)
    settings = {
        "data_folder": os.path.abspath(data_folder),
        "languages": codes,
        "splits": list(splits),
        "sample_rate": sample_rate,
        "min_duration": min_duration,
    }
    manifests = {split: os.path.join(save_folder, f"{split}.csv") for split in splits}
    report_path = os.path.join(save_folder, REPORT_NAME)
    _, is_done, mark_done = done_stamp(save_folder, settings)
    if is_done() and all(os.path.isfile(p) for p in manifests.values()):
        logger.info("Common Voice already prepared in %s: skipping", save_folder)
        return {"manifests": manifests, "report": report_path, "skipped": True}

    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"{data_folder}: no such Common Voice folder")
    present = [c for c in codes if os.path.isdir(os.path.join(data_folder, c))]
    absent = sorted(set(codes) - set(present))
    if absent:
        logger.warning("Locales not in %s (skipped): %s", data_folder, ", ".join(absent))
    if not present:
        raise ValueError(f"{data_folder}: none of the {len(codes)} requested locales is there")

    report = PreparationReport()
    kept = {}
    for split in splits:
        rows, jobs = [], []
        for code in present:
            tsv = os.path.join(data_folder, code, f"{SPLITS[split]}.tsv")
            if not os.path.isfile(tsv):
                logger.warning("%s: missing, no %s data for %s", tsv, split, code)
                continue
            for entry in read_cv_tsv(tsv):
                clip = entry["path"]
                text = (entry.get("sentence") or "").strip()
                if not text:
                    report.add(code, split, clip, "empty transcript")
                    continue
                src = os.path.join(data_folder, code, "clips", clip)
                dst = os.path.join(save_folder, "wavs", code, os.path.splitext(clip)[0] + ".flac")
                rows.append(
                    {
                        "ID": f"{code}_{os.path.splitext(clip)[0]}",
                        "wav": dst,
                        "language": code,
                        "transcript": text,
                        "_clip": clip,
                    }
                )
                jobs.append((src, dst))
        results = convert_many(jobs, sample_rate, workers=workers, desc=f"decoding {split}")
        good = []
        for row, (duration, error) in zip(rows, results):
            if error is None and duration < min_duration:
                error = f"shorter than {min_duration} s"
            if error is not None:
                report.add(row["language"], split, row["_clip"], error)
                continue
            row["duration"] = f"{duration:.3f}"
            good.append(row)
        write_manifest(manifests[split], good)
        kept[split] = len(good)
        logger.info("%s: %d utterances kept", split, len(good))

    report.write(report_path)
    if len(report):
        logger.warning("%d rows left out, see %s: %s", len(report), report_path, report.reasons())
    mark_done()
    return {
        "manifests": manifests,
        "report": report_path,
        "left_out": len(report),
        "kept": kept,
        "skipped": False,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument(
        "--languages", default=os.path.join(os.path.dirname(__file__), "languages.txt")
    )
    parser.add_argument("--splits", nargs="+", default=["train", "dev"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--min_duration", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    summary = prepare_common_voice(
        args.data_folder,
        args.save_folder,
        args.languages,
        args.splits,
        workers=args.workers,
        min_duration=args.min_duration,
    )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
