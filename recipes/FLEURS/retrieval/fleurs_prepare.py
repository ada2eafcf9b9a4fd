"""FLEURS X speech -> EN / Y text retrieval manifests (SENSE paper, Tables III-IV).

Release layout (``google/fleurs``: per language ``<lang>/<split>.tsv`` and
``<lang>/audio/<split>.tar.gz``, extracted in place)::

    <data_folder>/fr_fr/train.tsv, dev.tsv, test.tsv
    <data_folder>/fr_fr/audio/test/10004088536354799741.wav ...

Each TSV line (tab-separated, no header) is one recording::

    id  file name  raw transcription  transcription  phonemes/chars  num samples  gender

``id`` is the FLoRes sentence id, shared by every language, so the
translation of a recording is the sentence with the same id in the other
language. Several recordings (speakers) usually share one id.

A pair is written with the short codes of the paper (``ml-en``, ``ny-cs``);
each code is resolved to its FLEURS folder (``ml_in``, ``en_us``, ...) by the
folder name's prefix, or through ``lang_dirs`` when that is ambiguous.

Example
-------
>>> prepare_fleurs("/data/fleurs", "results/manifests", pairs=["ml-en"])  # doctest: +SKIP
{'ml-en': 'results/manifests/ml-en'}
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence

from sense.evaluation import (
    AudioChecker,
    PrepReport,
    audio_entry,
    pair_is_prepared,
    parse_pair,
    prepare_present_pairs,
    read_tsv,
    text_entry,
    write_pair,
)

SPLITS = ("train", "dev", "test")
#: Columns of a FLEURS TSV line.
COLUMNS = ("id", "file", "raw_transcription", "transcription", "chars", "num_samples", "gender")
TEXT_COLUMNS = {"raw": 2, "normalized": 3}
RECORDINGS = ("first", "all")


def resolve_lang_dir(data_folder: str, lang: str, lang_dirs: Mapping[str, str] | None) -> str:
    """The FLEURS folder of a language code (``"fr"`` -> ``"<data_folder>/fr_fr"``)."""
    if lang_dirs and lang in lang_dirs:
        name = lang_dirs[lang]
    elif os.path.isdir(os.path.join(data_folder, lang)):
        name = lang
    else:
        found = sorted(
            d
            for d in os.listdir(data_folder)
            if d.startswith(f"{lang}_") and os.path.isdir(os.path.join(data_folder, d))
        )
        if len(found) != 1:
            what = "no folder" if not found else f"several folders ({', '.join(found)})"
            raise FileNotFoundError(
                f"{data_folder}: {what} for language {lang!r}; name it with "
                f"lang_dirs={{{lang}: <folder>}}"
            )
        name = found[0]
    path = os.path.join(data_folder, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such FLEURS language folder")
    for archive in glob.glob(os.path.join(path, "audio", "*.tar.gz")):
        split = os.path.join(path, "audio", os.path.basename(archive)[: -len(".tar.gz")])
        if not os.path.isdir(split):  # a layout error, not a missing language
            raise ValueError(
                f"{archive}: the audio is still archived; extract it "
                f"(tar -xzf {archive} -C {os.path.dirname(archive)})"
            )
    return path


def read_fleurs_split(lang_dir: str, split: str, report: PrepReport, lang: str) -> list[dict]:
    """The recordings of one split: ``{id, file, path, raw, normalized, split}``, TSV order.

    A malformed line is reported (as language ``lang``) and skipped.
    """
    tsv = os.path.join(lang_dir, f"{split}.tsv")
    _, rows = read_tsv(tsv)
    out = []
    for n, row in enumerate(rows, start=1):
        if len(row) < 3 or not row[0].strip() or not row[1].strip():
            report.add(lang, split, f"{tsv}:{n}", f"malformed line: line {n} of {tsv}")
            continue
        out.append(
            {
                "id": row[0].strip(),
                "file": row[1].strip(),
                "path": os.path.join(lang_dir, "audio", split, row[1].strip()),
                "raw": row[2].strip(),
                "normalized": row[3].strip() if len(row) > 3 else "",
                "split": split,
            }
        )
    return out


def _sentences(lang_dir: str, lang: str, text_column: str, report: PrepReport) -> dict[str, str]:
    """Sentence id -> text in this language, over every split present.

    The text of the recording with the lowest ``(split, file name)`` is used.
    """
    rows = []
    for split in SPLITS:
        if os.path.isfile(os.path.join(lang_dir, f"{split}.tsv")):
            rows += read_fleurs_split(lang_dir, split, report, lang)
    rows.sort(key=lambda r: (r["id"], SPLITS.index(r["split"]), r["file"]))
    texts: dict[str, str] = {}
    for r in rows:
        if r["id"] not in texts and r[text_column]:
            texts[r["id"]] = r[text_column]
    return texts


def prepare_fleurs(
    data_folder: str,
    save_folder: str,
    pairs: Sequence[str],
    splits: Sequence[str] = ("test",),
    recordings: str = "first",
    text_column: str = "raw",
    lang_dirs: Mapping[str, str] | None = None,
    skip_prep: bool = False,
) -> dict[str, str]:
    """Prepare each ``<x>-<y>`` pair; returns ``{pair: pair folder}``.

    Queries are the ``<x>`` recordings of ``splits``; with
    ``recordings="first"`` one per sentence id, the one whose file name sorts
    first (deterministic, whatever the TSV order), with ``"all"`` every
    recording. The search database holds the ``<y>`` text (``text_column``:
    ``raw`` or ``normalized`` transcription) of each query's sentence id,
    taken from any ``<y>`` split, one entry per id.

    A recording whose audio is missing or unreadable, or whose sentence id
    has no ``<y>`` text, is left out and listed in ``dropped.json``.
    """
    if recordings not in RECORDINGS:
        raise ValueError(f"recordings must be one of {RECORDINGS}, got {recordings!r}")
    if text_column not in TEXT_COLUMNS:
        raise ValueError(f"text_column must be one of {tuple(TEXT_COLUMNS)}, got {text_column!r}")

    def prepare_pair(pair: str) -> str:
        src, tgt = parse_pair(pair)
        folder = os.path.join(save_folder, pair)
        src_dir = resolve_lang_dir(data_folder, src, lang_dirs)
        tgt_dir = resolve_lang_dir(data_folder, tgt, lang_dirs)
        options = {
            "src_dir": os.path.abspath(src_dir),
            "tgt_dir": os.path.abspath(tgt_dir),
            "splits": list(splits),
            "recordings": recordings,
            "text_column": text_column,
        }
        if skip_prep or pair_is_prepared(folder, options):
            return folder
        report = PrepReport(name=pair)
        checker = AudioChecker()
        translations = _sentences(tgt_dir, tgt, text_column, report)
        rows = []
        for split in splits:
            if not os.path.isfile(os.path.join(src_dir, f"{split}.tsv")):
                raise FileNotFoundError(f"{os.path.join(src_dir, split + '.tsv')}: no such file")
            rows += read_fleurs_split(src_dir, split, report, src)
        rows.sort(key=lambda r: (r["id"], r["file"]))
        query: dict[str, dict] = {}
        search: dict[str, dict] = {}
        for r in rows:
            item = f"{r['split']}/{r['file']}"
            if recordings == "first" and r["id"] in search:
                continue  # this sentence already has its query
            problem = checker.check(r["path"])
            if problem is not None:
                report.add(src, r["split"], item, f"{problem}: {r['path']}")
                continue
            if r["id"] not in translations:
                reason = f"no translation: no {tgt} sentence with id {r['id']}"
                report.add(src, r["split"], item, reason)
                continue
            search.setdefault(r["id"], text_entry(translations[r["id"]], tgt))
            query[item] = audio_entry(
                r["path"], src, target=r["id"], sentence_id=r["id"], text=r["raw"]
            )
        write_pair(folder, query, search, report, options)
        return folder

    return prepare_present_pairs(pairs, prepare_pair)
