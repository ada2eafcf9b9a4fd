"""SLURP slot-filling manifests (SENSE paper, Table VII, EN).

Accepted layout: a clone of the SLURP repository
(``github.com/pswietojanski/slurp``) with the audio its
``scripts/download_audio.sh`` fetches, unpacked::

    <root>/dataset/slurp/train.jsonl, train_synthetic.jsonl, devel.jsonl, test.jsonl
    <root>/audio/slurp_real/audio-1434542201-headset.flac, audio-1434542201.flac, ...
    <root>/audio/slurp_synth/audio-....flac

(``slurp_real/`` and ``slurp_synth/`` directly under ``<root>``, as
SpeechBrain's SLURP recipe unpacks them, are found too; ``audio_folder``
names any other place.) Each JSON line is one sentence::

    {"slurp_id": 13804, "sentence": "...",
     "sentence_annotation": "siri what is one [currency_name : american dollar] in ...",
     "recordings": [{"file": "audio-1434542201-headset.flac", ...}, ...], ...}

and each of its recordings becomes one manifest row: the transcript and
spans come from ``sentence_annotation`` (:func:`sense.slu.prepare.parse_bracket_markup`),
the audio is the release's FLAC, read in place. ``-headset`` files are the
close-talk microphone, the others far-field; ``recordings`` keeps both
(the default), or one of them.

Writes ``<save_folder>/{train,dev,test}.csv`` (``train`` from
``train_splits``: ``train`` and optionally ``train_synthetic``; ``dev``
from ``devel``) and ``dropped.tsv``, the rows left out with the reason.

Example
-------
>>> prepare_slurp("/data/slurp", "results/slurp/prepared")  # doctest: +SKIP
{'train': 'results/slurp/prepared/train.csv', 'dev': ..., 'test': ...}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

from sense.evaluation import AudioChecker
from sense.prepare import PreparationReport
from sense.slu.prepare import (
    parse_bracket_markup,
    parse_or_report,
    prepare_manifests,
    read_jsonl,
    slu_row,
)

LANGUAGE = "en"
ANNOTATION_DIR = os.path.join("dataset", "slurp")
# release split -> (manifest, audio folder)
RELEASE_SPLITS = {
    "train": ("train", "slurp_real"),
    "train_synthetic": ("train", "slurp_synth"),
    "devel": ("dev", "slurp_real"),
    "test": ("test", "slurp_real"),
}
HEADSET_SUFFIX = "-headset"
RECORDINGS = ("all", "headset", "far_field")


def find_audio_folder(data_folder: str) -> str:
    """The folder holding ``slurp_real/``: ``<root>/audio`` or ``<root>``."""
    for folder in (os.path.join(data_folder, "audio"), data_folder):
        if os.path.isdir(os.path.join(folder, "slurp_real")):
            return folder
    raise FileNotFoundError(
        f"{data_folder}: no slurp_real/ under audio/ or at the top "
        "(run the SLURP repository's scripts/download_audio.sh and unpack both archives, "
        "or pass audio_folder)"
    )


def keep_recording(name: str, recordings: str, synthetic: bool) -> bool:
    """Whether a real recording matches the microphone choice (synthetic ones always do)."""
    if synthetic or recordings == "all":
        return True
    headset = os.path.splitext(name)[0].endswith(HEADSET_SUFFIX)
    return headset == (recordings == "headset")


def split_rows(
    path: str,
    release_split: str,
    audio_dir: str,
    recordings: str,
    checker: AudioChecker,
    report: PreparationReport,
) -> list[dict]:
    """Manifest rows of one release file, one per kept recording."""
    synthetic = release_split == "train_synthetic"
    rows = []
    for n, entry in read_jsonl(path, LANGUAGE, release_split, report):
        where = f"{release_split}.jsonl:{n} (slurp_id {entry.get('slurp_id')})"
        annotation = entry.get("sentence_annotation")
        if not isinstance(annotation, str):
            report.add(LANGUAGE, release_split, where, "no sentence_annotation")
            continue
        parsed = parse_or_report(
            partial(parse_bracket_markup, annotation), report, LANGUAGE, release_split, where
        )
        if parsed is None:
            continue
        transcript, spans = parsed
        files = [r.get("file") for r in entry.get("recordings") or [] if isinstance(r, dict)]
        if not files:
            report.add(LANGUAGE, release_split, where, "no recordings")
            continue
        for name in files:
            if not name or not keep_recording(name, recordings, synthetic):
                continue
            wav = os.path.join(audio_dir, name)
            problem = checker.check(wav)
            if problem is not None:
                report.add(LANGUAGE, release_split, wav, problem)
                continue
            item = f"{release_split}-{entry.get('slurp_id')}-{os.path.splitext(name)[0]}"
            rows.append(slu_row(item, checker.duration(wav), wav, LANGUAGE, transcript, spans))
    return rows


def prepare_slurp(
    data_folder: str,
    save_folder: str,
    train_splits: Sequence[str] = ("train",),
    recordings: str = "all",
    audio_folder: str | None = None,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Write the SLURP manifests; returns ``{split: csv path}``.

    Parameters
    ----------
    data_folder : str
        The SLURP repository clone (``dataset/slurp/*.jsonl``).
    save_folder : str
        Where ``train.csv``, ``dev.csv``, ``test.csv`` and ``dropped.tsv`` go.
    train_splits : sequence of str
        Release files joined into ``train.csv``: ``train``, ``train_synthetic``.
    recordings : {"all", "headset", "far_field"}
        Which real recordings to keep (synthetic speech has one kind).
    audio_folder : str, optional
        The folder holding ``slurp_real/`` and ``slurp_synth/`` (default: found
        under ``data_folder``).

    A sentence whose markup does not parse, or with an empty transcript, is
    left out; so is a recording that is missing or unreadable. Each is in
    ``dropped.tsv`` with its reason. Running again with the same settings
    does nothing.
    """
    if recordings not in RECORDINGS:
        raise ValueError(f"recordings must be one of {RECORDINGS}, got {recordings!r}")
    bad = [s for s in train_splits if RELEASE_SPLITS.get(s, ("",))[0] != "train"]
    if bad or not train_splits:
        raise ValueError(f"train_splits must be taken from ('train', 'train_synthetic'), got {bad}")
    audio_folder = audio_folder or find_audio_folder(data_folder)
    settings = {
        "data_folder": os.path.abspath(data_folder),
        "audio_folder": os.path.abspath(audio_folder),
        "train_splits": list(train_splits),
        "recordings": recordings,
    }
    wanted = [*train_splits, "devel", "test"]
    files = {s: os.path.join(data_folder, ANNOTATION_DIR, f"{s}.jsonl") for s in wanted}

    def build(report: PreparationReport) -> dict[str, list[dict]]:
        missing = [p for p in files.values() if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"SLURP annotation files missing: {', '.join(missing)}")
        checker = AudioChecker()
        rows: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
        for release_split in wanted:
            manifest, audio_sub = RELEASE_SPLITS[release_split]
            audio_dir = os.path.join(audio_folder, audio_sub)
            rows[manifest] += split_rows(
                files[release_split], release_split, audio_dir, recordings, checker, report
            )
        return rows

    return prepare_manifests(save_folder, settings, build, "SLURP", skip_prep=skip_prep)
