"""Write a synthesized parallel corpus as a Common Voice release.

The layout is that of a real Common Voice (17+) download, so the real Common
Voice preparation code reads it unchanged::

    <root>/<locale>/clips/common_voice_<locale>_<n>.mp3    mono mp3, 22.05 kHz
    <root>/<locale>/{train,dev,test,validated}.tsv         CV columns, tab-separated, unquoted
    <root>/<locale>/{invalidated,other}.tsv                header only (nothing was rejected)
    <root>/<locale>/clip_durations.tsv                     clip, duration[ms]

and, beside it, what the demo needs on top of Common Voice::

    <root>/<locale>/word_alignments.json   clip -> [[word, start_s, end_s], ...]
    <root>/heldout.json                    held-out sentence ids, their text in every
                                           language, and their clips per locale
    <root>/.sense_demo_release.json        stamp: arguments' hash and the summary

``train.tsv`` holds the training meanings, ``dev.tsv`` the validation ones and
``test.tsv`` the held-out ones; a meaning is in one split in every language.
Each clip's speaker is its espeak-ng voice and variant (its ``client_id`` is a
hash of that name, as Common Voice hashes its contributors).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sense.demo.corpus import LANGUAGES, CorpusSplit
from sense.demo.synth import EspeakSynthesizer, variant_gender
from sense.io import atomic_write, write_text_atomic

CV_COLUMNS = (
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
)
"""Columns of the clip tables of Common Voice 17 and later, in order."""

SPLIT_TSVS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
VALIDATED_TSV = "validated.tsv"
EMPTY_TSVS = ("invalidated.tsv", "other.tsv")
DURATIONS_TSV = "clip_durations.tsv"
DURATIONS_COLUMNS = ("clip", "duration[ms]")
ALIGNMENTS_JSON = "word_alignments.json"
HELDOUT_JSON = "heldout.json"
STAMP_JSON = ".sense_demo_release.json"
FORMAT_VERSION = 1
CV_GENDERS = {"male": "male_masculine", "female": "female_feminine"}
UP_VOTES = 2  # what a validated Common Voice clip has at least
PARALLEL_MIN_CLIPS = 64  # below this, starting worker processes costs more than it saves


class _ClipJob(NamedTuple):
    path: str
    text: str
    locale: str
    variant: str | None
    rate: int
    pitch: int
    pitch_range: int


class _Clip(NamedTuple):
    split: str
    locale: str
    clip: str
    sentence_id: str  # the corpus id ("s00042")
    sentence: str
    variant: str | None


def _write_clip(synthesizer: EspeakSynthesizer, job: _ClipJob):
    """Synthesize one clip, write it as mp3 (atomically); return (duration s, words)."""
    out = synthesizer.synthesize(
        job.text,
        job.locale,
        rate=job.rate,
        pitch=job.pitch,
        pitch_range=job.pitch_range,
        variant=job.variant,
    )
    atomic_write(
        job.path,
        lambda tmp: sf.write(
            tmp, out.waveform, out.sample_rate, format="MP3", subtype="MPEG_LAYER_III"
        ),
        fsync=False,  # thousands of clips, each cheap to synthesize again
    )
    return len(out.waveform) / out.sample_rate, out.words


_WORKER_SYNTHESIZER: EspeakSynthesizer | None = None


def _init_worker(config: dict) -> None:
    global _WORKER_SYNTHESIZER
    _WORKER_SYNTHESIZER = EspeakSynthesizer(**config)


def _worker_write_clip(job: _ClipJob):
    return _write_clip(_WORKER_SYNTHESIZER, job)


def _split_parts(split) -> dict[str, list[dict[str, str]]]:
    """(train, dev, heldout) -> {"train": ..., "dev": ..., "test": ...}."""
    if not isinstance(split, CorpusSplit):
        if len(split) != 3:
            raise TypeError("split must be a CorpusSplit (train, dev, heldout)")
        split = CorpusSplit(*split)
    parts = {"train": list(split.train), "dev": list(split.dev), "test": list(split.heldout)}
    seen: dict[str, str] = {}
    for name, rows in parts.items():
        for row in rows:
            if row["id"] in seen:
                raise ValueError(f"sentence {row['id']} is in both {seen[row['id']]} and {name}")
            seen[row["id"]] = name
    if not parts["train"]:
        raise ValueError("the split has no training sentences")
    return parts


def _check_text(row: dict[str, str], locale: str) -> str:
    if locale not in row:
        raise ValueError(f"sentence {row['id']} has no {locale!r} text")
    text = row[locale]
    if not text.strip() or any(c in text for c in "\t\r\n"):
        raise ValueError(
            f"sentence {row['id']} ({locale}) is empty or holds a tab or a line break, "
            f"which a Common Voice tsv cannot store: {text!r}"
        )
    return text


def _plan(parts, languages, synthesizer, utterances_per_sentence, seed, root: Path):
    """Every clip to write, with its voice drawn from a per-sentence seeded RNG."""
    clips, jobs = [], []
    for locale in languages:
        number = 0
        for split_name, rows in parts.items():
            for row in rows:
                text = _check_text(row, locale)
                key = [seed, zlib.crc32(locale.encode()), zlib.crc32(row["id"].encode())]
                rng = np.random.default_rng(key)
                # Readings of one sentence get different variants while there are enough.
                order = rng.permutation(len(synthesizer.variants))
                for u in range(utterances_per_sentence):
                    variant = synthesizer.variants[order[u % len(order)]]
                    params = synthesizer.sample_params(rng, variant=variant)
                    number += 1
                    clip = f"common_voice_{locale}_{number:08d}.mp3"
                    path = str(root / locale / "clips" / clip)
                    clips.append(_Clip(split_name, locale, clip, row["id"], text, variant))
                    jobs.append(_ClipJob(path, text, locale, *params))
    return clips, jobs


def _release_hash(parts, languages, synthesizer, utterances_per_sentence, seed) -> str:
    config = synthesizer.config()
    del config["data_path"], config["library_path"]  # where it is installed is no argument
    description = {
        "format": FORMAT_VERSION,
        "languages": list(languages),
        "parts": {
            name: [[row["id"]] + [row[x] for x in languages] for row in rows]
            for name, rows in parts.items()
        },
        "synthesizer": config,
        "utterances_per_sentence": utterances_per_sentence,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def _write_alignments(path: Path, alignments: dict[str, list]) -> None:
    """One clip per line: ``"clip.mp3": [["word", start, end], ...]``."""
    lines = [
        f"{json.dumps(clip)}: {json.dumps(words, ensure_ascii=False)}"
        for clip, words in alignments.items()
    ]
    write_text_atomic(path, "{\n" + ",\n".join(lines) + "\n}\n")


def _tsv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Common Voice's tsv: a header, tab-separated fields, no quoting."""
    lines = ["\t".join(columns)] + ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _cv_row(clip: _Clip, data_path: str) -> list[str]:
    speaker = f"espeak-ng:{clip.locale}+{clip.variant or 'default'}"
    gender = CV_GENDERS.get(variant_gender(data_path, clip.variant), "") if clip.variant else ""
    return [
        hashlib.sha512(speaker.encode()).hexdigest(),
        clip.clip,
        hashlib.sha256(clip.sentence.encode()).hexdigest(),
        clip.sentence,
        "",
        str(UP_VOTES),
        "0",
        "",
        gender,
        "",
        "",
        clip.locale,
        "",
    ]


def _read_stamp(root: Path) -> dict | None:
    path = root / STAMP_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # unreadable: treat as an unfinished release of ours


def _is_complete(stamp: dict | None, digest: str, root: Path) -> bool:
    if not stamp or not stamp.get("complete") or stamp.get("hash") != digest:
        return False
    for locale in stamp["summary"]["languages"]:
        folder = root / locale
        names = [VALIDATED_TSV, DURATIONS_TSV, ALIGNMENTS_JSON, *SPLIT_TSVS.values()]
        if not all((folder / name).is_file() for name in names):
            return False
        n_clips = sum(stamp["summary"]["clips"][locale].values())
        if sum(1 for _ in (folder / "clips").glob("*.mp3")) != n_clips:
            return False
    return (root / HELDOUT_JSON).is_file()


def write_commonvoice_release(
    root: str | os.PathLike,
    split: CorpusSplit,
    languages: Sequence[str] = LANGUAGES,
    synthesizer: EspeakSynthesizer | None = None,
    utterances_per_sentence: int = 1,
    seed: int = 0,
    num_workers: int = 2,
    progress: bool = True,
) -> dict:
    """Synthesize every sentence of a split corpus into a Common Voice release.

    Idempotent: a finished release written with the same arguments is left as it
    is.  A release of this function with other arguments (or one left
    unfinished) is replaced; a folder it did not write is never touched.

    Parameters
    ----------
    root : path
        Release folder; one sub-folder per locale.
    split : CorpusSplit
        ``(train, dev, heldout)`` from :func:`sense.demo.corpus.split_corpus`;
        they become ``train.tsv``, ``dev.tsv`` and ``test.tsv``.
    languages : sequence of str
        Locales to write (corpus columns; also the espeak-ng voices).
    synthesizer : EspeakSynthesizer, optional
        Its variants and ranges decide the voices; default ``EspeakSynthesizer()``.
    utterances_per_sentence : int
        Readings of each sentence per locale, each with its own voice.
    seed : int
        Seed of the voice draws (each sentence's draw depends only on the seed,
        locale and sentence id, not on the number of workers).
    num_workers : int
        Processes synthesizing in parallel, each with its own espeak-ng.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Summary: ``root``, ``languages``, ``clips`` (locale -> split -> count),
        ``seconds`` (locale -> audio seconds), ``sample_rate``, ``written``
        (False when the release was already there) and ``elapsed_s``.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.corpus import build_parallel_corpus, split_corpus
    >>> split = split_corpus(build_parallel_corpus(4), n_heldout=1, n_dev=1)
    >>> root = tempfile.mkdtemp()
    >>> summary = write_commonvoice_release(root, split, ["fr"], progress=False)
    >>> summary["clips"]["fr"]
    {'train': 2, 'dev': 1, 'test': 1}
    """
    start = time.perf_counter()
    root = Path(root)
    languages = list(languages)
    if not languages or len(set(languages)) != len(languages):
        raise ValueError(f"languages must be distinct and not empty, got {languages}")
    if utterances_per_sentence < 1:
        raise ValueError(f"utterances_per_sentence must be >= 1, got {utterances_per_sentence}")
    synthesizer = synthesizer or EspeakSynthesizer()
    parts = _split_parts(split)
    clips, jobs = _plan(parts, languages, synthesizer, utterances_per_sentence, seed, root)
    digest = _release_hash(parts, languages, synthesizer, utterances_per_sentence, seed)

    stamp = _read_stamp(root)
    if _is_complete(stamp, digest, root):
        return {**stamp["summary"], "written": False, "elapsed_s": time.perf_counter() - start}
    if stamp is not None:  # ours, but other arguments or unfinished: start again
        for locale in stamp.get("languages", []):
            shutil.rmtree(root / locale, ignore_errors=True)
    for locale in languages:
        folder = root / locale
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(
                f"{folder} exists and was not written by write_commonvoice_release "
                f"(no {root / STAMP_JSON}); remove it or choose another root"
            )
    root.mkdir(parents=True, exist_ok=True)
    _write_json(root / STAMP_JSON, {"hash": digest, "complete": False, "languages": languages})
    for locale in languages:
        (root / locale / "clips").mkdir(parents=True, exist_ok=True)

    results = _synthesize_all(jobs, synthesizer, num_workers, progress)

    summary = {
        "root": str(root),
        "languages": languages,
        "clips": {x: {name: 0 for name in SPLIT_TSVS} for x in languages},
        "seconds": dict.fromkeys(languages, 0.0),
        "sample_rate": synthesizer.sample_rate,
        "utterances_per_sentence": utterances_per_sentence,
    }
    for locale in languages:
        rows = {name: [] for name in SPLIT_TSVS}
        durations, alignments = [], {}
        for clip, (seconds, words) in zip(clips, results):
            if clip.locale != locale:
                continue
            rows[clip.split].append(_cv_row(clip, synthesizer.data_path))
            durations.append((clip.clip, round(seconds * 1000)))
            alignments[clip.clip] = [[w, round(b, 3), round(e, 3)] for w, b, e in words]
            summary["clips"][locale][clip.split] += 1
            summary["seconds"][locale] += seconds
        folder = root / locale
        for name, filename in SPLIT_TSVS.items():
            write_text_atomic(folder / filename, _tsv(CV_COLUMNS, rows[name]))
        write_text_atomic(folder / VALIDATED_TSV, _tsv(CV_COLUMNS, sum(rows.values(), [])))
        for filename in EMPTY_TSVS:
            write_text_atomic(folder / filename, _tsv(CV_COLUMNS, []))
        write_text_atomic(folder / DURATIONS_TSV, _tsv(DURATIONS_COLUMNS, durations))
        _write_alignments(folder / ALIGNMENTS_JSON, alignments)
        summary["seconds"][locale] = round(summary["seconds"][locale], 2)

    heldout_ids = {name: [row["id"] for row in parts[name]] for name in ("dev", "test")}
    _write_json(
        root / HELDOUT_JSON,
        {
            "languages": languages,
            "splits": heldout_ids,
            "sentences": {
                row["id"]: {x: row[x] for x in row if x != "id"}
                for name in ("dev", "test")
                for row in parts[name]
            },
            "clips": {
                locale: {
                    c.clip: c.sentence_id
                    for c in clips
                    if c.locale == locale and c.split != "train"
                }
                for locale in languages
            },
        },
    )
    _write_json(
        root / STAMP_JSON,
        {"hash": digest, "complete": True, "languages": languages, "summary": summary},
    )
    return {**summary, "written": True, "elapsed_s": time.perf_counter() - start}


def _synthesize_all(jobs, synthesizer, num_workers, progress):
    """Run the clip jobs, in order, in this process or in ``num_workers`` processes."""
    bar = tqdm(total=len(jobs), desc="synthesizing clips", unit="clip", disable=not progress)
    results = []
    with bar:
        if num_workers <= 1 or len(jobs) < PARALLEL_MIN_CLIPS:
            for job in jobs:
                results.append(_write_clip(synthesizer, job))
                bar.update()
        else:
            # spawn: every worker loads its own espeak-ng (it keeps global state), and
            # nothing the caller imported (torch's threads...) is forked.  A worker that
            # dies raises BrokenProcessPool here rather than hanging.
            with ProcessPoolExecutor(
                num_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(synthesizer.config(),),
            ) as pool:
                try:
                    for result in pool.map(_worker_write_clip, jobs, chunksize=8):
                        results.append(result)
                        bar.update()
                except BaseException:  # Ctrl-C, SIGTERM: drop the queued clips, do not wait
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    return results


def load_heldout(root: str | os.PathLike) -> dict:
    """Read ``<root>/heldout.json`` (see the module docstring).

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.corpus import build_parallel_corpus, split_corpus
    >>> root = tempfile.mkdtemp()
    >>> split = split_corpus(build_parallel_corpus(3), n_heldout=1)
    >>> _ = write_commonvoice_release(root, split, ["fr"], progress=False)
    >>> sorted(load_heldout(root))
    ['clips', 'languages', 'sentences', 'splits']
    """
    path = Path(root) / HELDOUT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no held-out manifest {path}; run write_commonvoice_release first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_word_alignments(
    root: str | os.PathLike, locale: str
) -> dict[str, list[tuple[str, float, float]]]:
    """Read ``<root>/<locale>/word_alignments.json``: clip -> [(word, start_s, end_s)].

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.corpus import build_parallel_corpus, split_corpus
    >>> root = tempfile.mkdtemp()
    >>> split = split_corpus(build_parallel_corpus(3), n_heldout=1)
    >>> _ = write_commonvoice_release(root, split, ["fr"], progress=False)
    >>> words = load_word_alignments(root, "fr")["common_voice_fr_00000001.mp3"]
    >>> words[0][1] <= words[0][2]
    True
    """
    path = Path(root) / locale / ALIGNMENTS_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no word alignments {path}; run write_commonvoice_release first")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {clip: [(w, float(b), float(e)) for w, b, e in words] for clip, words in raw.items()}
