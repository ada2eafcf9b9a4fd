"""Learned attention against uniform mean pooling: what the attention is worth.

The same model embeds the same utterances twice: with its learned attention,
and with equal weights on every real frame (the attention scorer's output
replaced by zeros), everything else unchanged. Retrieval R@k on prepared pairs
(:mod:`sense.evaluation`) then measures what the attention adds.

Example
-------
>>> from sense.inference import SENSE  # doctest: +SKIP
>>> model = SENSE.from_hparams("path/to/model")  # doctest: +SKIP
>>> compare_pooling(model, "path/to/model", {"fr-en": "pairs/fr-en"}, "out")  # doctest: +SKIP
{'learned attention': {'fr-en': {'R@1': ...}}, 'uniform mean pooling': {...}}
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

from sense.evaluation import SENSEEncoder

ATTENTION = "learned attention"
UNIFORM = "uniform mean pooling"


@contextlib.contextmanager
def uniform_attention(model):
    """Within the block, the model pools with equal weights: the mean of the real frames.

    The attention scorer's output is replaced by zeros, so the softmax over an
    utterance's real frames is uniform; everything else (frames, padding
    masks, windows of long recordings, the projection) is unchanged.
    """
    handle = model.mods.pooling.attention.register_forward_hook(
        lambda _module, _inputs, output: torch.zeros_like(output)
    )
    try:
        yield model
    finally:
        handle.remove()


class LoadedSENSEEncoder(SENSEEncoder):
    """A benchmark encoder over an already loaded model, with learned or uniform pooling.

    Parameters
    ----------
    model : sense.inference.SENSE
        The loaded model (shared by both poolings: loaded once).
    source : str
        Its folder or hub id (the embedding cache's identity is built from it).
    uniform : bool
        Pool with equal weights (:func:`uniform_attention`) instead of the
        learned attention.
    """

    def __init__(self, model, source: str, uniform: bool = False):
        super().__init__(source, name=UNIFORM if uniform else ATTENTION)
        self._loaded = model
        self.uniform = uniform
        if uniform:
            self.identity += ":uniform-pooling"

    @property
    def model(self):
        return self._loaded

    def encode_audio(self, items):
        if not self.uniform:
            return super().encode_audio(items)
        with uniform_attention(self._loaded):
            return super().encode_audio(items)


def compare_pooling(
    model,
    source: str,
    pairs: Mapping[str, str],
    output_folder: str,
    cache_folder: str | None = None,
    batch_size: int = 8,
) -> dict[str, dict[str, dict]]:
    """R@1 (and R@5, R@10, MRR) of the learned attention and of mean pooling on each pair.

    ``pairs`` maps a column name to a prepared pair folder (``query.json``,
    ``search.json``; :func:`sense.evaluation.write_pair`). The table is written
    as ``<output_folder>/pooling.{md,csv,json}``.
    """
    from sense.evaluation import run_benchmark

    encoders = [LoadedSENSEEncoder(model, source), LoadedSENSEEncoder(model, source, True)]
    return run_benchmark(
        encoders,
        dict(pairs),
        output_folder,
        cache_folder,
        ks=(1, 5, 10),
        batch_size=batch_size,
        title="Learned attention against uniform mean pooling (same model, same frames)",
        table_name="pooling",
    )
