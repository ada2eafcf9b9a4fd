"""Prepare DECODA for summarization from utterance embeddings.

DECODA (RATP call-centre conversations, French) with the synopses of the
CCCS task (MultiLing 2015). The layout read::

    <data_folder>/
      audio/<dialog id>.wav            one recording per dialogue (any format
                                       soundfile reads: wav, flac, ...)
      trans-manu/<split>/<id>.trs      manual transcription in the Transcriber
                                       format (XML; ISO-8859-1 in the release):
                                       its <Turn startTime endTime speaker>
                                       elements give the turn segmentation
      synopsis/FR_<id>_syn.txt         CCCS synopses: one a line, tab-separated,
                                       the synopsis in the third column

``<split>`` is ``train``, ``dev`` or ``test`` (the release's partition); a
dialogue is in the split whose ``trans-manu`` folder holds it, or, for a
dialogue without a transcription, the split whose ``partitions/<split>.lst``
lists it. Without a ``.trs`` the recording is cut at its pauses
(:func:`sense.windows.plan_silence_windows`). Several synopses of one
dialogue: the first is the reference, all are kept in the manifest.

Each dialogue becomes a document whose units are its turns
``[audio path, start, end]`` (see :mod:`sense.summarization.data`), written to
``<save_folder>/{train,valid,test}.json``; a dialogue without audio, with
unreadable audio or without a synopsis is left out and listed in
``report.json``.
"""

from __future__ import annotations

import glob
import logging
import os
import xml.etree.ElementTree as ET

from sense.dataio import AudioError, audio_info, load_audio
from sense.prepare import done_stamp
from sense.summarization.data import write_manifest, write_report
from sense.windows import plan_silence_windows

logger = logging.getLogger(__name__)

#: Our split names -> the release's partitions.
SPLITS = {"train": "train", "valid": "dev", "test": "test"}
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: Turns shorter than this (seconds) are dropped (a click, a breath).
MIN_TURN_SECONDS = 0.2
SYNOPSIS_COLUMN = 2


def read_turns(path: str, min_seconds: float = MIN_TURN_SECONDS) -> list[tuple[float, float]]:
    """``(start, end)`` of the speaker turns of a Transcriber ``.trs`` file, in seconds.

    Turns without a speaker (silence, music) and turns shorter than
    ``min_seconds`` are left out.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.trs")
    >>> _ = open(p, "w").write('<Trans><Episode><Section><Turn speaker="spk1" '
    ...     'startTime="0" endTime="2.5">bonjour</Turn><Turn startTime="2.5" endTime="3">'
    ...     '</Turn></Section></Episode></Trans>')
    >>> read_turns(p)
    [(0.0, 2.5)]
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise ValueError(f"{path}: not a Transcriber file ({err})") from err
    turns = []
    for turn in root.iter("Turn"):
        if not turn.get("speaker"):
            continue
        start, end = float(turn.get("startTime")), float(turn.get("endTime"))
        if end - start >= min_seconds:
            turns.append((start, end))
    return turns


def read_synopses(path: str) -> list[str]:
    """The synopses of a CCCS ``*_syn.txt`` file (third tab-separated column, or the line)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first synopsis
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    synopses = []
    for line in text.splitlines():
        columns = line.split("\t")
        value = columns[SYNOPSIS_COLUMN] if len(columns) > SYNOPSIS_COLUMN else line
        if value.strip():
            synopses.append(value.strip())
    return synopses


def _dialogues(data_folder: str) -> dict[str, tuple[str, str | None]]:
    """``{dialog id: (split, trs path or None)}`` from the transcriptions and partitions."""
    found = {}
    for split, release in SPLITS.items():
        for trs in sorted(glob.glob(os.path.join(data_folder, "trans-manu", release, "*.trs"))):
            found[os.path.splitext(os.path.basename(trs))[0]] = (split, trs)
        lst = os.path.join(data_folder, "partitions", f"{release}.lst")
        if os.path.isfile(lst):
            with open(lst, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        found.setdefault(os.path.splitext(line.strip())[0], (split, None))
    return found


def _audio_path(data_folder: str, dialog: str) -> str | None:
    for ext in AUDIO_EXTENSIONS:
        path = os.path.join(data_folder, "audio", dialog + ext)
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def _segments(audio: str, trs: str | None, utterance_seconds: float, rate: int = 16000):
    """Turns of the ``.trs`` clipped to the recording, or the silence splitter's pieces."""
    frames, native = audio_info(audio)
    duration = frames / native
    if trs is not None:
        turns = [(s, min(e, duration)) for s, e in read_turns(trs) if s < duration]
        if turns:
            return [[audio, s, e] for s, e in turns if e > s]
    wav = load_audio(audio, rate)
    spans = plan_silence_windows(wav, rate, utterance_seconds, utterance_seconds)
    return [[audio, s / rate, e / rate] for s, e in spans]


def prepare_decoda(
    data_folder: str, save_folder: str, utterance_seconds: float = 8.0
) -> dict[str, str]:
    """Write the manifests of the three splits; their paths by split.

    Parameters
    ----------
    data_folder : str
        The DECODA release with the CCCS synopses (see the module docstring).
    save_folder : str
        Where the manifests and ``report.json`` go.
    utterance_seconds : float
        Longest piece of the silence splitter, for dialogues without turns.
    """
    os.makedirs(save_folder, exist_ok=True)
    paths = {split: os.path.join(save_folder, f"{split}.json") for split in SPLITS}
    settings = {"data_folder": os.path.abspath(data_folder), "utterance": utterance_seconds}
    _, is_done, mark_done = done_stamp(save_folder, settings)
    if is_done() and all(os.path.isfile(p) for p in paths.values()):
        return paths
    dialogues = _dialogues(data_folder)
    if not dialogues:
        raise FileNotFoundError(
            f"{data_folder}: no DECODA dialogue (expected trans-manu/<split>/*.trs "
            "or partitions/<split>.lst)"
        )
    documents = {split: {} for split in SPLITS}
    skipped = []
    for dialog, (split, trs) in sorted(dialogues.items()):
        syn = os.path.join(data_folder, "synopsis", f"FR_{dialog}_syn.txt")
        synopses = read_synopses(syn) if os.path.isfile(syn) else []
        audio = _audio_path(data_folder, dialog)
        if not synopses:
            skipped.append((dialog, f"no synopsis ({syn})"))
            continue
        if audio is None:
            skipped.append((dialog, "no audio file"))
            continue
        try:
            units = _segments(audio, trs, utterance_seconds)
        except (AudioError, ValueError) as err:
            skipped.append((dialog, str(err)))
            continue
        documents[split][dialog] = {
            "units": units,
            "summary": synopses[0],
            "synopses": synopses,
            "segmentation": "turns" if trs is not None else "silence",
        }
    for split, path in paths.items():
        write_manifest(path, documents[split])
    kept = {split: len(docs) for split, docs in documents.items()}
    write_report(os.path.join(save_folder, "report.json"), skipped, kept)
    logger.info("DECODA: %s kept, %d skipped", kept, len(skipped))
    mark_done()
    return paths
