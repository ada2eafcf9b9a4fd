"""Prepare MLSUM (French) for summarization from sentence embeddings.

MLSUM as distributed for ``datasets`` holds, per language and split, one
record per article with the fields ``text``, ``summary``, ``title``,
``topic``, ``url`` and ``date``. Two local layouts are read:

* the original release, unzipped: ``<data_folder>/fr_train.jsonl``,
  ``fr_val.jsonl``, ``fr_test.jsonl`` (one JSON object per line);
* the hub's Parquet conversion: ``<data_folder>/fr/train-*.parquet``,
  ``validation-*.parquet``, ``test-*.parquet`` (or the same names directly
  in ``data_folder``).

Each article is split into sentences (:func:`sense.summarization.text.split_sentences`)
and written to ``<save_folder>/{train,valid,test}.json`` (see
:mod:`sense.summarization.data`). Articles without text or summary are left
out and listed in ``report.json``.
"""

from __future__ import annotations

import glob
import logging
import os

from sense.prepare import done_stamp
from sense.summarization.data import write_manifest, write_report
from sense.summarization.text import split_sentences

logger = logging.getLogger(__name__)

FIELDS = ("text", "summary", "title", "topic", "url", "date")
#: Our split names -> the names of the release (jsonl) and of the hub conversion (parquet).
SPLITS = {"train": ("train", "train"), "valid": ("val", "validation"), "test": ("test", "test")}


def find_split_files(data_folder: str, language: str, split: str) -> tuple[str, list[str]]:
    """``(builder, files)`` of one split: ``("json", [...])`` or ``("parquet", [...])``."""
    jsonl_name, parquet_name = SPLITS[split]
    jsonl = os.path.join(data_folder, f"{language}_{jsonl_name}.jsonl")
    if os.path.isfile(jsonl):
        return "json", [jsonl]
    for folder in (os.path.join(data_folder, language), data_folder):
        files = sorted(glob.glob(os.path.join(folder, f"{parquet_name}-*.parquet")))
        if files:
            return "parquet", files
    raise FileNotFoundError(
        f"{data_folder}: no MLSUM {split} split for {language!r} "
        f"(expected {language}_{jsonl_name}.jsonl or {language}/{parquet_name}-*.parquet)"
    )


def read_split(data_folder: str, language: str, split: str):
    """The records of one split, through ``datasets`` (local files only)."""
    from datasets import load_dataset

    builder, files = find_split_files(data_folder, language, split)
    dataset = load_dataset(builder, data_files={split: files}, split=split)
    missing = [f for f in ("text", "summary") if f not in dataset.column_names]
    if missing:
        raise ValueError(f"{files[0]}: not MLSUM: no field {missing} in {dataset.column_names}")
    return dataset


def prepare_mlsum(
    data_folder: str,
    save_folder: str,
    language: str = "fr",
    max_documents: dict | None = None,
    min_sentences: int = 1,
) -> dict[str, str]:
    """Write the manifests of the three splits; their paths by split.

    Parameters
    ----------
    data_folder : str
        The local copy of MLSUM (see the module docstring).
    save_folder : str
        Where the manifests and ``report.json`` go.
    language : str
        MLSUM language code (``"fr"`` in the paper).
    max_documents : dict, optional
        ``{split: n}``: keep the first ``n`` articles of a split.
    min_sentences : int
        Leave out articles with fewer sentences.
    """
    os.makedirs(save_folder, exist_ok=True)
    paths = {split: os.path.join(save_folder, f"{split}.json") for split in SPLITS}
    settings = {
        "data_folder": os.path.abspath(data_folder),
        "language": language,
        "max_documents": max_documents,
        "min_sentences": min_sentences,
    }
    _, is_done, mark_done = done_stamp(save_folder, settings)
    if is_done() and all(os.path.isfile(p) for p in paths.values()):
        logger.info("MLSUM already prepared in %s", save_folder)
        return paths
    skipped, kept = [], {}
    for split, path in paths.items():
        dataset = read_split(data_folder, language, split)
        limit = (max_documents or {}).get(split)
        documents = {}
        for index, record in enumerate(dataset):
            if limit is not None and len(documents) >= limit:
                break
            doc_id = f"{language}-{split}-{index:06d}"
            text, summary = record.get("text") or "", (record.get("summary") or "").strip()
            sentences = split_sentences(text, language)
            if not summary:
                skipped.append((doc_id, "empty summary"))
            elif len(sentences) < min_sentences:
                skipped.append((doc_id, f"{len(sentences)} sentences (< {min_sentences})"))
            else:
                extra = {f: record[f] for f in FIELDS[2:] if f in record}
                documents[doc_id] = {"units": sentences, "summary": summary, **extra}
        write_manifest(path, documents)
        kept[split] = len(documents)
        logger.info("MLSUM %s: %d articles", split, len(documents))
    write_report(os.path.join(save_folder, "report.json"), skipped, kept)
    mark_done()
    return paths
