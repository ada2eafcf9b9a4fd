"""Embed prepared pairs with each encoder and score them; write the results table.

:func:`embed_manifest` embeds a manifest in batches (through the cache),
:func:`evaluate_pair` scores one encoder on one pair with
:func:`sense.retrieval.retrieval_metrics`, and :func:`run_benchmark` does
every (encoder, pair) and adds the rows to ``metrics.json`` and the table.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sense.evaluation.cache import EmbeddingCache, item_key
from sense.evaluation.encoders import AudioItem, Encoder
from sense.evaluation.manifests import AUDIO, JSON_STYLE, TEXT, AudioChecker, load_pair, read_json
from sense.io import write_json_atomic

logger = logging.getLogger(__name__)

#: Embeddings written to the cache at once while a manifest is embedded, so
#: an interrupted run keeps what it computed.
CACHE_FLUSH_EVERY = 2048


def _entry_seconds(entry: Mapping, checker: AudioChecker) -> float:
    if entry.get("duration") is not None:
        return float(entry["duration"])
    return checker.duration(entry["path"]) or 0.0


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="utt", dynamic_ncols=True, leave=False)


def _as_rows(emb: Any, n: int, what: str) -> torch.Tensor:
    emb = torch.as_tensor(emb)
    if emb.dim() != 2 or emb.shape[0] != n:
        raise ValueError(f"{what} returned shape {tuple(emb.shape)} for a batch of {n}")
    return emb.detach().float().cpu()


def embed_manifest(
    encoder: Encoder,
    manifest: Mapping[str, dict],
    cache: EmbeddingCache | None = None,
    batch_size: int = 8,
    desc: str | None = None,
    text_batch_size: int | None = None,
) -> torch.Tensor:
    """Embed every entry of a manifest, in order; [N, D] float32.

    Entries already in ``cache`` (for this encoder's identity) are read, the
    others computed in batches (audio sorted by length to limit padding,
    ``batch_size`` at a time; text grouped by language, ``text_batch_size``
    at a time, by default ``8 * batch_size``) behind a progress bar and
    stored as they come.
    """
    if not manifest:
        raise ValueError("cannot embed an empty manifest")
    text_batch_size = text_batch_size or 8 * batch_size
    entries = list(manifest.values())
    keys = [item_key(e) for e in entries]
    found = cache.get(encoder.identity, keys) if cache is not None else {}
    todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    computed: dict[str, torch.Tensor] = {}
    pending_keys: list[str] = []
    pending: list[torch.Tensor] = []

    def flush(force: bool = False) -> None:
        if cache is not None and pending and (force or len(pending_keys) >= CACHE_FLUSH_EVERY):
            cache.put(encoder.identity, list(pending_keys), torch.cat(pending))
            pending_keys.clear()
            pending.clear()

    def store(rows: list[int], emb: torch.Tensor) -> None:
        for i, e in zip(rows, emb):
            computed[keys[i]] = e
        pending_keys.extend(keys[i] for i in rows)
        pending.append(emb)
        flush()

    if todo:
        checker = AudioChecker()
        audio = [i for i in todo if entries[i]["modality"] == AUDIO]
        audio.sort(key=lambda i: -_entry_seconds(entries[i], checker))
        texts: dict[Any, list[int]] = {}
        for i in todo:
            if entries[i]["modality"] == TEXT:
                texts.setdefault(entries[i].get("lang"), []).append(i)
        bar = _progress(len(todo), desc or encoder.name)
        try:
            for b in range(0, len(audio), batch_size):
                rows = audio[b : b + batch_size]
                batch = [
                    AudioItem(
                        entries[i]["path"],
                        entries[i].get("start"),
                        entries[i].get("duration"),
                        entries[i].get("lang"),
                    )
                    for i in rows
                ]
                store(rows, _as_rows(encoder.encode_audio(batch), len(rows), "encode_audio"))
                bar.update(len(rows))
            for lang, group in texts.items():
                for b in range(0, len(group), text_batch_size):
                    rows = group[b : b + text_batch_size]
                    sentences = [entries[i]["text"] for i in rows]
                    emb = encoder.encode_text(sentences, lang)
                    store(rows, _as_rows(emb, len(rows), "encode_text"))
                    bar.update(len(rows))
        finally:
            flush(force=True)
            bar.close()
    return torch.stack([found[k] if k in found else computed[k] for k in keys])


def evaluate_pair(
    encoder: Encoder,
    folder: str,
    cache: EmbeddingCache | None = None,
    ks: Sequence[int] = (1, 5, 10),
    mean_subtract: bool = True,
    batch_size: int = 8,
    text_batch_size: int | None = None,
) -> dict[str, float | int]:
    """R@k, MRR and database sizes of one encoder on one prepared pair.

    Example
    -------
    >>> import tempfile
    >>> from sense.evaluation.manifests import PrepReport, text_entry, write_pair
    >>> folder = tempfile.mkdtemp()
    >>> q = {"q1": text_entry("a", "en", target="s1"), "q2": text_entry("b", "en", target="s2")}
    >>> s = {"s1": text_entry("a", "fr"), "s2": text_entry("b", "fr")}
    >>> _ = write_pair(folder, q, s, PrepReport(name="en-fr"), {})
    >>> class OneHot:
    ...     name = identity = "one-hot"
    ...     def encode_text(self, texts, lang=None):
    ...         return torch.stack([torch.eye(2)[ord(t) - ord("a")] for t in texts])
    ...     def encode_audio(self, items): raise NotImplementedError
    >>> evaluate_pair(OneHot(), folder, ks=(1,))["R@1"]
    1.0
    """
    from sense.retrieval import retrieval_metrics

    name = os.path.basename(os.path.normpath(folder))
    query, search, targets = load_pair(folder)
    q = embed_manifest(
        encoder, query, cache, batch_size, f"{encoder.name} {name} query", text_batch_size
    )
    s = embed_manifest(
        encoder, search, cache, batch_size, f"{encoder.name} {name} search", text_batch_size
    )
    return retrieval_metrics(q, s, targets, ks=tuple(ks), mean_subtract=mean_subtract)


def run_benchmark(
    encoders: Sequence[Encoder],
    pairs: Mapping[str, str],
    output_folder: str,
    cache_folder: str | EmbeddingCache | None = None,
    ks: Sequence[int] = (1, 5, 10),
    mean_subtract: bool = True,
    batch_size: int = 8,
    text_batch_size: int | None = None,
    metric: str = "R@1",
    title: str | None = None,
    group: str | None = None,
    table_name: str = "retrieval",
) -> dict[str, dict[str, dict]]:
    """Evaluate every encoder on every prepared pair and write the table.

    Parameters
    ----------
    encoders : sequence of Encoder
        Rows of the table.
    pairs : dict
        Column name (e.g. ``"fr-en"``) -> prepared pair folder.
    output_folder : str
        Receives ``metrics.json`` (every metric of every model and pair) and the
        table of ``metric`` (``<table_name>.{md,json,csv}``), which also carries the
        "# DB query" and "# DB search" rows. An existing table there gains or
        updates rows, so models can be added one run at a time.
    cache_folder : str or EmbeddingCache, optional
        Embedding cache, or its folder (no cache when ``None``).
    ks, mean_subtract, batch_size, text_batch_size
        Recall cut-offs, the paper's mean subtraction, utterances and
        sentences per batch.
    metric, title, group : str
        Metric shown in the table, its caption and the data set heading of
        its columns (e.g. ``"FLEURS"``).
    table_name : str
        File name of the table in ``output_folder``.

    Returns
    -------
    dict
        ``{model name: {pair: metrics}}``.
    """
    if isinstance(cache_folder, EmbeddingCache) or cache_folder is None:
        cache = cache_folder
    else:
        cache = EmbeddingCache(cache_folder)
    results: dict[str, dict[str, dict]] = {}
    for encoder in encoders:
        results[encoder.name] = {}
        for pair, folder in pairs.items():
            metrics = evaluate_pair(
                encoder, folder, cache, ks, mean_subtract, batch_size, text_batch_size
            )
            results[encoder.name][pair] = metrics
            logger.info(
                "%s %s: %s",
                encoder.name,
                pair,
                ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)),
            )
    os.makedirs(output_folder, exist_ok=True)
    metrics_path = os.path.join(output_folder, "metrics.json")
    previous = read_json(metrics_path) if os.path.isfile(metrics_path) else {}
    for model, per_pair in results.items():
        previous.setdefault(model, {}).update(per_pair)
    write_json_atomic(metrics_path, previous, **JSON_STYLE)
    _write_table(results, os.path.join(output_folder, table_name), metric, title, group)
    return results


def _write_table(results, base, metric, title, group) -> str:
    """Add the rows of ``results`` to the table ``<base>.{md,json,csv}``."""
    from sense.results import RetrievalTable

    table = RetrievalTable.open(base, title=title or "", metric=metric)
    for model, per_pair in results.items():
        for pair, metrics in per_pair.items():
            table.add(model, pair, metrics, group=group)
    table.save(base)
    logger.info("results table: %s.md\n%s", base, table.to_markdown())
    return base
