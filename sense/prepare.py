"""Building blocks of dataset preparation: conversion, manifests, bad-row reports.

Preparation turns a release into manifests that training reads. A bad row (a
missing or corrupt clip, an empty transcript) is left out and listed with its
reason in a report; every good row is kept. Converted files are written
atomically, so an interrupted preparation resumes where it stopped and never
keeps a truncated file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import soundfile as sf
import torch
from tqdm import tqdm

from sense.dataio import SAMPLE_RATE, AudioError, load_audio
from sense.io import atomic_write, write_text_atomic

# Preparation manifests are SpeechBrain CSV files with these columns.
MANIFEST_FIELDS = ("ID", "duration", "wav", "language", "transcript")
ID_FIELD = "ID"


def convert_audio(src: str, dst: str, sample_rate: int = SAMPLE_RATE) -> float:
    """Decode ``src`` (any format), write mono ``sample_rate`` FLAC to ``dst``.

    The file is written under a temporary name and renamed, so ``dst`` exists
    only when complete. An existing ``dst`` is kept (resumable preparation).

    Returns
    -------
    float
        Duration of the audio in seconds.

    Raises
    ------
    AudioError
        When ``src`` is missing, unreadable or empty.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> sf.write(f"{d}/a.wav", np.zeros(22050, dtype="float32"), 22050)
    >>> convert_audio(f"{d}/a.wav", f"{d}/a.flac")
    1.0
    """
    if os.path.isfile(dst):
        info = sf.info(dst)
        return info.frames / info.samplerate
    wav = load_audio(src, sample_rate)
    # thousands of clips, each cheap to convert again: no fsync
    atomic_write(dst, lambda tmp: sf.write(tmp, wav.numpy(), sample_rate, format="FLAC"), False)
    return wav.shape[0] / sample_rate


def _single_thread() -> None:
    # Each worker process is one core's worth of work: several torch threads per
    # process would only fight over the cores (10x slower resampling here).
    torch.set_num_threads(1)


def _convert_job(job: tuple[str, str, int]) -> tuple[float | None, str | None]:
    src, dst, rate = job
    try:
        return convert_audio(src, dst, rate), None
    except AudioError as err:
        return None, err.problem


def convert_many(
    jobs: Sequence[tuple[str, str]],
    sample_rate: int = SAMPLE_RATE,
    workers: int = 1,
    desc: str = "converting",
) -> list[tuple[float | None, str | None]]:
    """Convert ``(src, dst)`` pairs in parallel; one ``(duration, error)`` per job.

    A failed job gets ``(None, reason)``; it never stops the others.

    Example
    -------
    >>> convert_many([("/nope.mp3", "/tmp/nope.flac")])
    [(None, 'no such file')]
    """
    args = [(src, dst, sample_rate) for src, dst in jobs]
    if workers <= 1 or len(args) < 2:
        return [_convert_job(a) for a in tqdm(args, desc=desc, disable=len(args) < 2)]
    with ProcessPoolExecutor(max_workers=workers, initializer=_single_thread) as pool:
        return list(tqdm(pool.map(_convert_job, args, chunksize=16), total=len(args), desc=desc))


@dataclass
class PreparationReport:
    """Rows left out of a preparation, each with the reason.

    Example
    -------
    >>> r = PreparationReport()
    >>> r.add("fr", "train", "clip1.mp3", "no such file")
    >>> len(r), r.reasons()
    (1, {'no such file': 1})
    """

    rows: list[dict] = field(default_factory=list)

    def add(self, language: str, split: str, item: str, reason: str) -> None:
        self.rows.append({"language": language, "split": split, "item": item, "reason": reason})

    def __len__(self) -> int:
        return len(self.rows)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["reason"]] = counts.get(row["reason"], 0) + 1
        return counts

    def write(self, path: str) -> None:
        """Write the report as TSV (one row per left-out item), atomically."""
        write_tsv(path, self.rows, ("language", "split", "item", "reason"))

    @staticmethod
    def read(path: str) -> list[dict]:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))


def write_tsv(
    path: str, rows: Iterable[dict], fields: Sequence[str], delimiter: str = "\t"
) -> None:
    """Write ``rows`` with a header, through a temporary file and a rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=list(fields), delimiter=delimiter, extrasaction="ignore"
            )
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def write_manifest(
    path: str, rows: Iterable[dict], fields: Sequence[str] = MANIFEST_FIELDS
) -> None:
    """Write a SpeechBrain CSV manifest (``ID`` first), atomically."""
    write_tsv(path, rows, fields, delimiter=",")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the line and the problem."""


def _manifest_rows(path: str, f) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of an open manifest, each row checked against the header."""
    reader = csv.reader(f, strict=True)
    records = []  # (first line, fields) of each record; blank lines left out
    try:
        header = [name.strip() for name in next(reader, [])]
        start = reader.line_num + 1
        for fields in reader:
            if fields:
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as err:
        raise ManifestError(f"{path}: line {start}: not CSV ({err})") from err
    if ID_FIELD not in header:
        raise ManifestError(f"{path}: no {ID_FIELD!r} column in the header {header}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ManifestError(f"{path}: columns named twice in the header: {repeated}")
    for line, fields in records:
        if len(fields) != len(header):
            raise ManifestError(
                f"{path}: line {line}: {len(fields)} fields, "
                f"the header has {len(header)} (a comma or quote not quoted as CSV?)"
            )
        yield line, dict(zip(header, fields))


def read_manifest(path: str) -> list[dict]:
    """Rows of a CSV manifest (:func:`write_manifest`), every cell exactly as written.

    This is the one reader of manifests: datasets are built from its rows
    (:func:`manifest_dataset`). Nothing in a cell is interpreted (SpeechBrain's
    ``DynamicItemDataset.from_csv`` would substitute ``$word``, fail on "it
    costs $5" and strip leading spaces); a UTF-8 byte-order mark and CRLF line
    ends are accepted.

    Raises
    ------
    FileNotFoundError
        Naming the manifest, when it is missing.
    ManifestError
        Naming the manifest (and the line): no ``ID`` column, a row whose
        field count differs from the header's, an empty or repeated ID,
        text that is not UTF-8 or not CSV.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> write_manifest(path, [{"ID": "u1", "duration": 1.5, "wav": "a.flac",
    ...     "language": "en", "transcript": 'It costs $5, "${x}"'}])
    >>> read_manifest(path)[0]["transcript"]
    'It costs $5, "${x}"'
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such manifest (run the preparation first)")
    rows, seen = [], {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for line, row in _manifest_rows(path, f):
                uid = row[ID_FIELD]
                if not uid.strip():
                    raise ManifestError(f"{path}: line {line}: empty {ID_FIELD}")
                if uid in seen:
                    raise ManifestError(
                        f"{path}: line {line}: {ID_FIELD} {uid!r} repeated (first on line "
                        f"{seen[uid]}); IDs must be unique"
                    )
                seen[uid] = line
                rows.append(row)
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text ({err})") from err
    return rows


def manifest_data(path: str) -> dict[str, dict]:
    """``{ID: row}`` of a manifest, as SpeechBrain's ``DynamicItemDataset`` takes it.

    Each row keeps its other columns as :func:`read_manifest` reads them,
    except ``duration``, a float (as SpeechBrain's ``load_data_csv`` gives
    it). Nothing is substituted.

    Raises
    ------
    ManifestError
        Also for a ``duration`` that is not a number (naming the row).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> write_manifest(path, [{"ID": "u1", "duration": "1.5", "wav": "a.flac",
    ...     "language": "en", "transcript": "$HOME"}])
    >>> manifest_data(path)
    {'u1': {'duration': 1.5, 'wav': 'a.flac', 'language': 'en', 'transcript': '$HOME'}}
    """
    data = {}
    for row in read_manifest(path):
        uid = row.pop(ID_FIELD)
        if "duration" in row:
            try:
                row["duration"] = float(row["duration"])
            except ValueError:
                raise ManifestError(
                    f"{path}: row {uid!r}: duration {row['duration']!r} is not a number"
                ) from None
        data[uid] = row
    return data


def manifest_dataset(path: str, dynamic_items=(), output_keys=()):
    """A SpeechBrain ``DynamicItemDataset`` of a manifest's rows (:func:`manifest_data`).

    Use it in place of ``DynamicItemDataset.from_csv``, which substitutes
    ``$word`` in every cell.

    Raises
    ------
    ManifestError
        Also when the manifest has no rows.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> write_manifest(path, [{"ID": "u1", "duration": "1.5", "wav": "a.flac",
    ...     "language": "en", "transcript": "It costs $5"}])
    >>> data = manifest_dataset(path, output_keys=["id", "transcript", "duration"])
    >>> data[0]
    {'id': 'u1', 'transcript': 'It costs $5', 'duration': 1.5}
    """
    from speechbrain.dataio.dataset import DynamicItemDataset

    data = manifest_data(path)
    if not data:
        raise ManifestError(f"{path}: the manifest has no rows")
    return DynamicItemDataset(data, list(dynamic_items), list(output_keys))


def done_stamp(folder: str, settings: dict) -> tuple[str, Callable[[], bool], Callable[[], None]]:
    """A stamp that records that a preparation with ``settings`` finished.

    Returns ``(path, is_done, mark_done)``: ``is_done()`` is True only when the
    stamp exists with the same settings, so changing a setting re-runs the
    preparation.

    Example
    -------
    >>> import tempfile
    >>> _, is_done, mark = done_stamp(tempfile.mkdtemp(), {"a": 1})
    >>> is_done(); mark(); is_done()
    False
    True
    """
    path = os.path.join(folder, ".prepared.json")
    wanted = json.dumps(settings, sort_keys=True, default=str)

    def is_done() -> bool:
        if not os.path.isfile(path):
            return False
        with open(path, encoding="utf-8") as f:
            return f.read() == wanted

    def mark_done() -> None:
        write_text_atomic(path, wanted)

    return path, is_done, mark_done
