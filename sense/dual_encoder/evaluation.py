"""An exported dual encoder in the benchmark runner (:mod:`sense.evaluation`), beside SENSE models.

A benchmark recipe's ``models`` names it as
``{type: "sense.dual_encoder.evaluation:DualEncoderBenchmark", source: <folder>}``;
its scores are :mod:`sense.dual_encoder.metrics`'.

Example
-------
>>> DualEncoderBenchmark("models/llm-de").name  # doctest: +SKIP
'llm-de'
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sense.evaluation.encoders import AudioItem, folder_fingerprint

__all__ = ["DualEncoderBenchmark"]


class DualEncoderBenchmark:
    """An exported dual encoder as a benchmark :class:`~sense.evaluation.Encoder`.

    Use it in a benchmark recipe's ``models`` as
    ``{type: "sense.dual_encoder.evaluation:DualEncoderBenchmark", source: <folder>}``.

    Parameters
    ----------
    source : str
        Folder written by :func:`~sense.dual_encoder.export.export_dual_encoder`.
    name : str, optional
        Row label (default: the folder's name).
    device : str
        Device to run on.
    """

    def __init__(self, source: str, name: str | None = None, device: str = "cpu"):
        self.source = os.path.abspath(source)
        self.name = name or os.path.basename(self.source.rstrip("/"))
        self.identity = f"dual-encoder:{self.source}:{folder_fingerprint(self.source)}"
        self.device = device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sense.dual_encoder.inference import DualEncoder

            self._model = DualEncoder.from_hparams(source=self.source, device=self.device)
        return self._model

    def encode_audio(self, items: Sequence[AudioItem]) -> torch.Tensor:
        wavs = [item.load(self.model.sample_rate) for item in items]
        return torch.stack(self.model.encode_waveforms(wavs))

    def encode_text(self, texts: Sequence[str], lang: str | None = None) -> torch.Tensor:
        return self.model.encode_text(list(texts))

    def __repr__(self) -> str:
        return f"DualEncoderBenchmark({self.source!r}, name={self.name!r})"
