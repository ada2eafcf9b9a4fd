"""Document manifests and the datasets that serve their cached embeddings.

A manifest is a JSON file ``{doc id: {"units": [...], "summary": str, ...}}``
(SpeechBrain's JSON layout): a unit is a sentence (text documents) or a
``[path, start, end]`` segment in seconds (spoken documents; ``start`` and
``end`` may be ``null`` for a whole file). The prepare scripts of the
recipes write them; :func:`cache_items` turns them into the rows of a
document cache, and :func:`make_dataset` into a SpeechBrain dataset whose
items carry the ``[N, D]`` embeddings of a document and its summary.

Example
-------
>>> cache_items({"d": {"units": ["Il pleut.", ["/a.wav", 0.0, 1.5]], "summary": "x"}})["d"][0]
'Il pleut.'
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sense.summarization.embeddings import document_embeddings, segment_key
from sense.teacher_cache import TeacherCache

UNITS = "units"
SUMMARY = "summary"


def read_manifest(path: str) -> dict:
    """Load a manifest, checking that every document has units and a summary."""
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    for doc_id, entry in manifest.items():
        if not entry.get(UNITS):
            raise ValueError(f"{path}: document {doc_id!r} has no units")
        if not isinstance(entry.get(SUMMARY), str):
            raise ValueError(f"{path}: document {doc_id!r} has no summary")
    return manifest


def _unit_key(unit) -> str:
    if isinstance(unit, str):
        return unit
    path, start, end = unit
    return segment_key(path, start, end)


def cache_items(manifest: Mapping) -> dict[str, list[str]]:
    """``{doc id: [unit key, ...]}``: sentences as they are, segments as :func:`segment_key`."""
    return {doc_id: [_unit_key(u) for u in entry[UNITS]] for doc_id, entry in manifest.items()}


def make_dataset(manifest_path: str, cache: TeacherCache, max_units: int | None = None):
    """A ``DynamicItemDataset`` with ``embs`` ``[N, D]``, ``summary`` and ``num_units``.

    Parameters
    ----------
    manifest_path : str
        A manifest (see the module docstring).
    cache : TeacherCache
        Holds every unit of the manifest (:func:`build_document_cache`).
    max_units : int, optional
        Keep the first ``max_units`` units of a long document (the seq2seq
        model's position limit).
    """
    import speechbrain as sb
    from speechbrain.dataio.dataset import DynamicItemDataset

    data = read_manifest(manifest_path)
    for entry in data.values():
        n = len(entry[UNITS])
        entry["num_units"] = n if max_units is None else min(n, int(max_units))
    dataset = DynamicItemDataset(data)

    @sb.utils.data_pipeline.takes("id", "num_units")
    @sb.utils.data_pipeline.provides("embs")
    def embeddings(doc_id, num_units):
        return document_embeddings(cache, doc_id, num_units)

    dataset.add_dynamic_item(embeddings)
    dataset.set_output_keys(["id", "embs", SUMMARY, "num_units"])
    return dataset


def write_manifest(path: str, documents: Mapping) -> None:
    """Write a manifest ``{doc id: {"units": [...], "summary": ..., ...}}`` atomically."""
    from sense.io import write_json_atomic

    write_json_atomic(path, dict(documents), ensure_ascii=False, indent=1)


def write_report(path: str, skipped: list[tuple[str, str]], kept: Mapping[str, int]) -> None:
    """A preparation report: documents kept per split, and each one left out with why."""
    from sense.io import write_json_atomic

    report = {"kept": dict(kept), "skipped": [{"id": i, "reason": r} for i, r in skipped]}
    write_json_atomic(path, report, ensure_ascii=False, indent=1)
