"""Speech -> transcript retrieval: R@1 and the WER of the retrieved transcript (seed 003, Table 1).

The paper scores a speech-text dual encoder by retrieving, for each
utterance, its transcript among all the transcripts of its language (R@1),
and by the word error rate of the transcript it retrieved against the
reference (a wrong retrieval of a near-identical sentence costs little).
:func:`transcript_metrics` computes both with our retrieval code
(:mod:`sense.retrieval`) and ``jiwer``; :func:`group_means` averages columns
by language group (Table 2); :func:`retrieved_text_metrics` scores the text
any benchmark encoder retrieves (:mod:`sense.dual_encoder.evaluation` plugs an
exported dual encoder into the benchmark runner).

Example
-------
>>> q = torch.eye(3)
>>> transcript_metrics(q, q, ["a b", "c", "d e"], ["a b", "c", "d e"])["WER"]
0.0
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

from sense.retrieval import prepare_embeddings, retrieval_metrics, search


def retrieved_texts(
    queries: torch.Tensor, database: torch.Tensor, texts: Sequence[str], mean_subtract: bool = True
) -> list[str]:
    """The database text each query retrieves first (our exact search, ties to the lower index)."""
    q = prepare_embeddings(queries, mean_subtract)
    _, top = search(q, prepare_embeddings(database, mean_subtract), k=1)
    return [texts[i] for i in top[:, 0].tolist()]


def transcript_metrics(
    queries: torch.Tensor,
    database: torch.Tensor,
    texts: Sequence[str],
    references: Sequence[str],
    targets: torch.Tensor | None = None,
    mean_subtract: bool = True,
) -> dict[str, float]:
    """R@1 (and R@5, R@10, MRR) of speech -> transcript retrieval, and the WER of the retrieved text.

    Parameters
    ----------
    queries : torch.Tensor
        ``[Nq, D]`` utterance embeddings.
    database : torch.Tensor
        ``[Nd, D]`` transcript embeddings.
    texts : sequence of str
        The ``Nd`` transcripts of the database.
    references : sequence of str
        The reference transcript of each query.
    targets : torch.Tensor, optional
        ``[Nq]`` index of each query's transcript (default: query ``i`` -> entry ``i``).
    """
    import jiwer

    if targets is None:
        targets = torch.arange(queries.shape[0])
    ks = tuple(k for k in (1, 5, 10) if k <= database.shape[0])
    metrics = retrieval_metrics(queries, database, targets, ks=ks, mean_subtract=mean_subtract)
    hypotheses = retrieved_texts(queries, database, texts, mean_subtract)
    metrics["WER"] = float(jiwer.wer(list(references), hypotheses))
    return metrics


def group_means(
    per_language: Mapping[str, Mapping[str, float]], groups: Mapping[str, str], metric: str = "R@1"
) -> dict[str, float]:
    """Mean ``metric`` of the languages of each group (Table 2); languages without a group are left out.

    Example
    -------
    >>> group_means({"fr": {"R@1": 0.8}, "de": {"R@1": 0.6}, "hi": {"R@1": 0.2}},
    ...             {"fr": "Western European", "de": "Western European", "hi": "South Asian"})
    {'South Asian': 0.2, 'Western European': 0.7}
    """
    values = defaultdict(list)
    for lang, metrics in per_language.items():
        if lang in groups and metric in metrics:
            values[groups[lang]].append(float(metrics[metric]))
    return {g: sum(v) / len(v) for g, v in sorted(values.items())}


def retrieved_text_metrics(
    encoder, folder: str, cache=None, mean_subtract: bool = True, batch_size: int = 8
) -> dict[str, float]:
    """WER and BLEU of the text each query of a prepared pair retrieves first, against its target.

    Works for any benchmark encoder (a dual encoder, a SENSE model): the
    embeddings come through ``cache`` when the R@k run already computed them.
    For an ``X-X`` pair (speech -> transcript) the WER is the paper's Table 1
    metric; for ``X-EN`` the BLEU of the retrieved English is its Figure 3.
    """
    import jiwer
    import sacrebleu

    from sense.evaluation.manifests import load_pair
    from sense.evaluation.runner import embed_manifest

    query, search_manifest, targets = load_pair(folder)
    q = embed_manifest(encoder, query, cache, batch_size)
    s = embed_manifest(encoder, search_manifest, cache, batch_size)
    texts = [entry["text"] for entry in search_manifest.values()]
    hypotheses = retrieved_texts(q, s, texts, mean_subtract)
    references = [texts[t] for t in targets.tolist()]
    return {
        "WER": float(jiwer.wer(references, hypotheses)),
        "BLEU": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
    }
