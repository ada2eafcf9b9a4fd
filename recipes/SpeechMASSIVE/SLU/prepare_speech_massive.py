"""Speech-MASSIVE slot-filling manifests (SENSE paper, Table VII, FR).

Speech-MASSIVE (Lee et al., 2024) is distributed as two Hugging Face data
sets of parquet files, one folder per locale; this reads local copies of
them (``git clone`` or ``huggingface-cli download``), never the network::

    <data_folder>/fr-FR/train-00000-of-00009.parquet ...      FBK-MT/Speech-MASSIVE
    <data_folder>/fr-FR/validation-00000-of-00002.parquet ...
    <data_folder>/fr-FR/train_115-00000-of-00001.parquet       the few-shot train split
    <test_folder>/fr-FR/test-00000-of-00002.parquet ...        FBK-MT/Speech-MASSIVE-test

Each row holds one recording: ``id``, ``annot_utt`` (the MASSIVE markup,
``"réveille-moi à [time : cinq heures]"``), ``audio`` (the file's bytes and
its original name) and ``is_transcript_reported`` (the speaker flagged the
prompt), among others. The parquet files are read with ``datasets``
(streamed: nothing is copied into a cache), the transcript and spans come
from ``annot_utt`` (:func:`sense.slu.prepare.parse_bracket_markup`, the
SLURP markup), and the audio is written as 16 kHz mono FLAC under
``<save_folder>/audio/<split>/``.

Writes ``<save_folder>/{train,dev,test}.csv`` (``dev`` from ``validation``)
and ``dropped.tsv``.

Example
-------
>>> prepare_speech_massive("/data/Speech-MASSIVE", "results/sm/prepared",
...                        test_folder="/data/Speech-MASSIVE-test")  # doctest: +SKIP
{'train': 'results/sm/prepared/train.csv', 'dev': ..., 'test': ...}
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from functools import partial

from sense.io import atomic_write
from sense.prepare import PreparationReport, convert_many
from sense.slu.prepare import (
    parse_bracket_markup,
    parse_or_report,
    prepare_manifests,
    slu_row,
)

TRAIN_SPLITS = ("train", "train_115")
AUDIO_DIR = "audio"
STAGING_DIR = ".raw"


def parquet_files(folder: str, locale: str, split: str) -> list[str]:
    """The parquet shards of ``split`` in ``folder/locale`` (``split-*.parquet``)."""
    return sorted(glob.glob(os.path.join(folder, locale, f"{split}-*.parquet")))


def read_rows(files: list[str], split: str, cache_dir: str) -> Iterator[dict]:
    """The rows of parquet shards, audio left as bytes, through ``datasets`` (streamed)."""
    import datasets

    stream = datasets.load_dataset(
        "parquet", data_files={split: files}, split=split, streaming=True, cache_dir=cache_dir
    )
    if "audio" in (stream.features or {}):
        stream = stream.cast_column("audio", datasets.Audio(decode=False))
    yield from stream


def _item_id(row: dict) -> str | None:
    """The row's ID: its MASSIVE ``id`` and the recording's file name."""
    utt = row.get("id")
    if utt is None or str(utt) == "":
        return None
    audio = row.get("audio") or {}
    name = os.path.splitext(os.path.basename(audio.get("path") or ""))[0]
    return f"{utt}-{name}" if name else str(utt)


def split_rows(
    files: list[str],
    split: str,
    locale: str,
    save_folder: str,
    skip_reported: bool,
    workers: int,
    report: PreparationReport,
) -> list[dict]:
    """Manifest rows of one split; the audio converted to FLAC (kept when already there)."""
    audio_dir = os.path.join(save_folder, AUDIO_DIR, split)
    staging = os.path.join(save_folder, STAGING_DIR, split)
    os.makedirs(audio_dir, exist_ok=True)
    pending = []  # (item, transcript, spans, raw path or None, flac path)
    cache_dir = os.path.join(save_folder, ".hf_cache")
    for n, row in enumerate(read_rows(files, split, cache_dir)):
        item = _item_id(row)
        where = item or f"{split} row {n}"
        if item is None:
            report.add(locale, split, where, "malformed row: no id")
            continue
        annotation = row.get("annot_utt")
        if not isinstance(annotation, str):
            report.add(locale, split, where, "no annot_utt")
            continue
        parsed = parse_or_report(
            partial(parse_bracket_markup, annotation), report, locale, split, where
        )
        if parsed is None:
            continue
        transcript, spans = parsed
        if skip_reported and row.get("is_transcript_reported"):
            report.add(locale, split, where, "transcript reported by the speaker")
            continue
        flac = os.path.join(audio_dir, f"{item}.flac")
        raw = None
        if not os.path.isfile(flac):
            audio = row.get("audio") or {}
            data = audio.get("bytes")
            if not data:
                report.add(locale, split, where, "no audio bytes")
                continue
            ext = os.path.splitext(audio.get("path") or "")[1] or ".wav"
            raw = os.path.join(staging, item + ext)
            atomic_write(raw, lambda tmp, data=data: _write_bytes(tmp, data), False)
        pending.append((item, transcript, spans, raw, flac))
    results = convert_many(
        [(raw or flac, flac) for _, _, _, raw, flac in pending],
        workers=workers,
        desc=f"Speech-MASSIVE {split}",
    )
    rows = []
    for (item, transcript, spans, raw, flac), (duration, problem) in zip(pending, results):
        if raw is not None and os.path.isfile(raw):
            os.remove(raw)
        if problem is not None:
            report.add(locale, split, item, problem)
            continue
        rows.append(slu_row(item, duration, flac, locale, transcript, spans))
    return rows


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def prepare_speech_massive(
    data_folder: str,
    save_folder: str,
    locale: str = "fr-FR",
    test_folder: str | None = None,
    train_split: str = "train",
    skip_reported: bool = False,
    workers: int = 1,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Write the Speech-MASSIVE manifests of ``locale``; returns ``{split: csv path}``.

    Parameters
    ----------
    data_folder : str
        Local copy of FBK-MT/Speech-MASSIVE (``<locale>/{train,validation}-*.parquet``).
    save_folder : str
        Where the manifests, ``dropped.tsv`` and the FLAC files go.
    locale : str
        ``fr-FR`` in the paper; ``de-DE`` is the other locale with a full train split.
    test_folder : str, optional
        Local copy of FBK-MT/Speech-MASSIVE-test (default: ``data_folder``).
    train_split : {"train", "train_115"}
        The full train split or the 115-utterance few-shot one.
    skip_reported : bool
        Leave out (and report) recordings whose speaker flagged the prompt.
    workers : int
        Processes converting audio.

    A row whose markup does not parse, with an empty transcript, or whose
    audio is missing or undecodable is left out and listed with the reason.
    Converted files are kept: an interrupted run resumes, and a run with the
    same settings does nothing.
    """
    if train_split not in TRAIN_SPLITS:
        raise ValueError(f"train_split must be one of {TRAIN_SPLITS}, got {train_split!r}")
    test_folder = test_folder or data_folder
    release = {"train": train_split, "dev": "validation", "test": "test"}
    files = {}
    for split, name in release.items():
        folder = test_folder if split == "test" else data_folder
        files[split] = parquet_files(folder, locale, name)
        if not files[split]:
            raise FileNotFoundError(
                f"{os.path.join(folder, locale)}: no {name}-*.parquet (Speech-MASSIVE"
                f"{'-test' if split == 'test' else ''} downloaded for {locale}?)"
            )
    settings = {
        "files": {s: [os.path.abspath(f) for f in fs] for s, fs in files.items()},
        "skip_reported": skip_reported,
    }

    def build(report: PreparationReport) -> dict[str, list[dict]]:
        return {
            split: split_rows(fs, split, locale, save_folder, skip_reported, workers, report)
            for split, fs in files.items()
        }

    return prepare_manifests(
        save_folder, settings, build, f"Speech-MASSIVE {locale}", skip_prep=skip_prep
    )
