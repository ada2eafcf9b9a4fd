"""Europarl-ST (v1.1) as released -> ZeroST evaluation manifests, one per direction.

The release layout::

    <data_folder>/<src>/audios/<audio id>.m4a
    <data_folder>/<src>/<tgt>/<split>/segments.lst      <audio id> <start s> <end s>
    <data_folder>/<src>/<tgt>/<split>/segments.<src>    transcript, one line per segment
    <data_folder>/<src>/<tgt>/<split>/segments.<tgt>    translation, one line per segment

Each talk's m4a (AAC) is decoded once with PyAV (soundfile cannot read it),
each segment written as 16 kHz mono FLAC (once, even when several directions
share it), and each direction gets ``<save_folder>/<src>-<tgt>_<split>.csv``
(a direction manifest of :mod:`sense.zerost.evaluation`: the columns of
``DIRECTION_FIELDS``, languages as NLLB codes). A missing or undecodable
talk, or a segment outside its talk, is left out and listed in
``report.tsv``; files whose line counts disagree stop the preparation with
an error naming them (a broken release).

Usage::

    python europarl_prepare.py DATA_FOLDER SAVE_FOLDER [--languages en fr de] [--split test]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import soundfile as sf

from sense.dataio import SAMPLE_RATE
from sense.io import atomic_write
from sense.prepare import PreparationReport, write_manifest
from sense.zerost.evaluation import DIRECTION_FIELDS, direction_manifest_name

#: The nine languages of ZeroST's Table 1 and their NLLB codes.
NLLB_CODES = {
    "en": "eng_Latn",
    "fr": "fra_Latn",
    "de": "deu_Latn",
    "it": "ita_Latn",
    "es": "spa_Latn",
    "pt": "por_Latn",
    "pl": "pol_Latn",
    "ro": "ron_Latn",
    "nl": "nld_Latn",
}
AUDIO_EXTENSION = ".m4a"


def decode_pyav(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file ffmpeg reads (m4a/AAC here) to mono float32 at ``sample_rate``.

    Raises
    ------
    ValueError
        The file cannot be decoded or holds no audio (the message names it).
    """
    import av

    chunks = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(audio=0):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except (av.error.FFmpegError, ValueError) as err:
        raise ValueError(f"{path}: cannot decode audio: {err}") from err
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError(f"{path}: no audio samples")
    return np.concatenate(chunks).astype(np.float32)


def _read_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing from the Europarl-ST release")
    # utf-8-sig: a file saved with a byte-order mark would otherwise start its first line
    # (a talk id, a transcript) with U+FEFF; universal newlines take CRLF line ends too.
    with open(path, encoding="utf-8-sig") as f:
        return [line.rstrip("\n") for line in f]


def read_direction(folder: str, src: str, tgt: str) -> list[dict]:
    """Segments of one ``<src>/<tgt>/<split>`` folder: audio id, times, transcript, translation.

    Raises
    ------
    ValueError
        The three files disagree in line count, or a ``segments.lst`` line is malformed.
    """
    lst = os.path.join(folder, "segments.lst")
    paths = (lst, os.path.join(folder, f"segments.{src}"), os.path.join(folder, f"segments.{tgt}"))
    segments, sources, targets = (_read_lines(p) for p in paths)
    if not len(segments) == len(sources) == len(targets):
        counts = ", ".join(
            f"{os.path.basename(p)}: {n}"
            for p, n in zip(paths, map(len, (segments, sources, targets)))
        )
        raise ValueError(f"{folder}: line counts disagree ({counts})")
    rows = []
    for number, (line, source, target) in enumerate(zip(segments, sources, targets), 1):
        parts = line.split()
        try:
            audio, start, end = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError) as err:
            raise ValueError(
                f"{lst}:{number}: expected '<audio id> <start> <end>', got {line!r}"
            ) from err
        rows.append(
            {
                "audio": audio,
                "start": start,
                "end": end,
                "transcript": source.strip(),
                "translation": target.strip(),
            }
        )
    return rows


def prepare_europarl_st(
    data_folder: str,
    save_folder: str,
    languages=tuple(NLLB_CODES),
    split: str = "test",
    sample_rate: int = SAMPLE_RATE,
) -> dict[str, str]:
    """Write one manifest per direction found; ``{"<src>-<tgt>": manifest path}``.

    Parameters
    ----------
    data_folder : str
        The unpacked release (``v1.1``).
    save_folder : str
        Where the segment FLAC files, manifests and ``report.tsv`` go.
    languages : sequence of str
        Two-letter codes, sources and targets alike (keys of :data:`NLLB_CODES`).
    split : str
        ``"test"``, ``"dev"`` or ``"train"``.
    """
    unknown = sorted(set(languages) - set(NLLB_CODES))
    if unknown:
        raise ValueError(f"languages {unknown} are not in Europarl-ST; known: {sorted(NLLB_CODES)}")
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"{data_folder}: no such folder (the Europarl-ST release)")
    report = PreparationReport()
    manifests = {}
    for src in languages:
        talks: dict[str, np.ndarray | None] = {}
        for tgt in languages:
            folder = os.path.join(data_folder, src, tgt, split)
            if tgt == src or not os.path.isdir(folder):
                continue
            rows = []
            for row in read_direction(folder, src, tgt):
                uid = f"{src}_{row['audio']}_{row['start']:.2f}_{row['end']:.2f}"
                wav = os.path.join(save_folder, "audio", src, f"{uid}.flac")
                if not os.path.isfile(wav):
                    audio = _talk(data_folder, src, row["audio"], talks, report, split, sample_rate)
                    if audio is None:
                        continue
                    first, last = int(row["start"] * sample_rate), int(row["end"] * sample_rate)
                    if not 0 <= first < last <= len(audio):
                        report.add(
                            src,
                            split,
                            uid,
                            f"segment outside its talk ({len(audio) / sample_rate:.2f} s)",
                        )
                        continue
                    os.makedirs(os.path.dirname(wav), exist_ok=True)
                    segment = audio[first:last]
                    atomic_write(
                        wav,
                        lambda tmp, s=segment: sf.write(tmp, s, sample_rate, format="FLAC"),
                        False,
                    )
                rows.append(
                    {
                        "ID": f"{uid}-{tgt}",
                        "duration": f"{sf.info(wav).duration:.3f}",
                        "wav": os.path.abspath(wav),
                        "language": NLLB_CODES[src],
                        "transcript": row["transcript"],
                        "translation": row["translation"],
                        "target_language": NLLB_CODES[tgt],
                    }
                )
            path = os.path.join(save_folder, direction_manifest_name(src, tgt, split))
            write_manifest(path, rows, DIRECTION_FIELDS)
            manifests[f"{src}-{tgt}"] = path
    report.write(os.path.join(save_folder, "report.tsv"))
    return manifests


def _talk(data_folder, src, audio_id, talks, report, split, sample_rate):
    """The decoded talk (once per talk), or None after reporting why not."""
    if audio_id not in talks:
        path = os.path.join(data_folder, src, "audios", audio_id + AUDIO_EXTENSION)
        try:
            talks[audio_id] = decode_pyav(path, sample_rate)
        except (FileNotFoundError, ValueError) as err:
            talks[audio_id] = None
            reason = "no such file" if not os.path.isfile(path) else str(err).split(": ", 1)[-1]
            report.add(src, split, audio_id + AUDIO_EXTENSION, reason)
    return talks[audio_id]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--languages", nargs="+", default=list(NLLB_CODES))
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    try:
        manifests = prepare_europarl_st(
            args.data_folder, args.save_folder, args.languages, args.split
        )
    except (OSError, ValueError) as err:
        parser.exit(2, f"europarl_prepare: error: {err}\n")
    for direction, path in sorted(manifests.items()):
        print(f"{direction}\t{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
