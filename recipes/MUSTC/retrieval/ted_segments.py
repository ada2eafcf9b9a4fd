"""Retrieval manifests from a TED-style release (MUST-C and mTEDx share the layout).

``<data_folder>/<src>-<tgt>/data/<split>/wav/<talk>.{wav,flac}`` and
``.../<split>/txt/<split>.{yaml,<src>,<tgt>}``, where line ``i`` of the YAML
(``{duration, offset, ..., wav}``) is the segment of talk ``wav`` whose
transcript and translation are line ``i`` of ``<split>.<src>`` and
``<split>.<tgt>``. The mTEDx recipe imports this module from here.

Example
-------
>>> prepare_talk_segments("/data/MUSTC", "manifests", "en-de", ["dev"], ["train", "dev"])  # doctest: +SKIP
'manifests/en-de'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from sense.evaluation import (
    AudioChecker,
    PrepReport,
    audio_entry,
    pair_is_prepared,
    parse_pair,
    text_entry,
    write_pair,
)

logger = logging.getLogger(__name__)


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def read_segment_yaml(path: str) -> list[dict]:
    """The segment list of a MUST-C / mTEDx split YAML (one mapping per line).

    Each item has at least ``wav``, ``offset`` and ``duration`` (MUST-C also
    ``rW``, ``uW``, ``speaker_id``).
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=loader)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list of segments, got {type(data).__name__}")
    return data


def _split_root(data_folder: str, pair: str) -> str:
    candidates = [os.path.join(data_folder, pair, "data")]
    if os.path.basename(os.path.normpath(data_folder)) == pair:
        candidates.append(os.path.join(data_folder, "data"))
    for path in candidates:
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(
        f"no release folder for {pair}: looked for {' and '.join(candidates)} "
        f"(expected layout <data_folder>/{pair}/data/<split>/{{wav,txt}})"
    )


def _talk_audio(wav_dir: str, wav: str, extensions: Sequence[str]) -> str:
    """The audio file a segment's ``wav`` field names (with or without extension)."""
    path = os.path.join(wav_dir, str(wav))
    if os.path.isfile(path):
        return path
    stem = os.path.splitext(path)[0] if os.path.splitext(path)[1] in extensions else path
    for ext in extensions:
        if os.path.isfile(stem + ext):
            return stem + ext
    return path if os.path.splitext(path)[1] else stem + extensions[0]


def _split_texts(txt_dir: str, split: str, lang: str) -> tuple[str, list[str]]:
    path = os.path.join(txt_dir, f"{split}.{lang}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (the {lang} side of split {split})")
    return path, _read_lines(path)


def prepare_talk_segments(
    data_folder: str,
    save_folder: str,
    pair: str,
    query_splits: Sequence[str],
    search_splits: Sequence[str],
    audio_extensions: Sequence[str] = (".wav", ".flac"),
    dedup_search_text: bool = True,
    skip_prep: bool = False,
) -> str:
    """Speech -> text retrieval manifests from a MUST-C / mTEDx style release.

    Layout: ``<data_folder>/<src>-<tgt>/data/<split>/wav/<talk>.{wav,flac}``
    and ``.../<split>/txt/<split>.{yaml,<src>,<tgt>}``, where line ``i`` of the
    YAML (``{duration, offset, ..., wav}``) is the segment of talk ``wav``
    whose transcript and translation are line ``i`` of ``<split>.<src>`` and
    ``<split>.<tgt>``.

    Queries are the segments of ``query_splits`` (cut from the talk
    recordings by offset and duration when embedded); the search database is
    the ``<tgt>`` text of ``search_splits`` plus the translations of the
    queries. A segment whose talk audio is missing or unreadable, that runs
    past the end of its audio, or whose translation is empty, is left out and
    reported. With ``dedup_search_text`` identical sentences are one search
    entry (the first occurrence's id), so a query cannot lose to an exact copy
    of its own translation.

    Returns
    -------
    str
        The pair folder ``<save_folder>/<pair>``.

    Raises
    ------
    FileNotFoundError
        If a split folder, its YAML or its target text file is missing.
    ValueError
        If a YAML and its text files do not have the same number of lines
        (their alignment is then unknown: nothing is paired).
    """
    src, tgt = parse_pair(pair)
    folder = os.path.join(save_folder, pair)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "pair": pair,
        "query_splits": list(query_splits),
        "search_splits": list(search_splits),
        "dedup_search_text": bool(dedup_search_text),
    }
    if skip_prep or pair_is_prepared(folder, options):
        logger.info("%s: already prepared in %s", pair, folder)
        return folder
    root = _split_root(data_folder, pair)
    report = PrepReport(name=pair)
    checker = AudioChecker()
    search: dict[str, dict] = {}
    text_to_id: dict[str, str] = {}

    def add_search(item: str, text: str) -> str:
        if dedup_search_text and text in text_to_id:
            return text_to_id[text]
        text_to_id.setdefault(text, item)
        search[item] = text_entry(text, tgt)
        return item

    query: dict[str, dict] = {}
    for split in list(dict.fromkeys(list(query_splits) + list(search_splits))):
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"{split_dir}: no such split folder")
        txt_dir = os.path.join(split_dir, "txt")
        tgt_path, tgt_lines = _split_texts(txt_dir, split, tgt)
        if split in query_splits:
            yaml_path = os.path.join(txt_dir, f"{split}.yaml")
            if not os.path.isfile(yaml_path):
                raise FileNotFoundError(f"{yaml_path}: no such file (segments of split {split})")
            segments = read_segment_yaml(yaml_path)
            src_path = os.path.join(txt_dir, f"{split}.{src}")
            src_lines = _read_lines(src_path) if os.path.isfile(src_path) else None
            counts = {yaml_path: len(segments), tgt_path: len(tgt_lines)}
            if src_lines is not None:
                counts[src_path] = len(src_lines)
            if len(set(counts.values())) != 1:
                detail = ", ".join(f"{p}: {n}" for p, n in counts.items())
                raise ValueError(
                    f"split {split} of {pair}: the segment YAML and text files differ in "
                    f"length ({detail}); their lines cannot be paired"
                )
            for i, (seg, translation) in enumerate(zip(segments, tgt_lines)):
                item = f"{split}/{i}"
                if not isinstance(seg, Mapping) or not {"wav", "offset", "duration"} <= set(seg):
                    report.add(src, split, item, f"bad segment: line {i + 1} of {yaml_path}")
                    continue
                path = _talk_audio(os.path.join(split_dir, "wav"), seg["wav"], audio_extensions)
                offset, duration = float(seg["offset"]), float(seg["duration"])
                problem = checker.check(path, offset, duration)
                if problem is not None:
                    report.add(src, split, item, f"{problem}: {path}")
                    continue
                if not translation.strip():
                    report.add(
                        src, split, item, f"no translation: line {i + 1} of {tgt_path} is empty"
                    )
                    continue
                target = add_search(item, translation.strip())
                extra = {"text": src_lines[i]} if src_lines is not None else {}
                query[item] = audio_entry(
                    path, src, offset, duration, target=target, talk=str(seg["wav"]), **extra
                )
        if split in search_splits:
            for i, translation in enumerate(tgt_lines):
                if translation.strip():
                    add_search(f"{split}/{i}", translation.strip())
                elif split not in query_splits:
                    report.add(
                        tgt, split, f"{split}/{i}", f"empty translation: line {i + 1} of {tgt_path}"
                    )
    return write_pair(folder, query, search, report, options)
