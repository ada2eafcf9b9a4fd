"""The former name of :mod:`sense.translation.model`, kept for folders exported before the rename.

Translation and ZeroST folders written before then build
``!new:sense.translation.decoder.Seq2SeqDecoder`` (and ``FrameProjection``)
in their ``hyperparams.yaml``; :mod:`sense.trust` allows those names, and
they are the same classes. New exports, and new code, name
``sense.translation.model``.
"""

from sense.translation.model import (
    DEFAULT_MAX_DECODE_RATIO,
    DEFAULT_MIN_DECODE_TOKENS,
    IGNORE_INDEX,
    FrameProjection,
    Seq2SeqDecoder,
)

__all__ = [
    "DEFAULT_MAX_DECODE_RATIO",
    "DEFAULT_MIN_DECODE_TOKENS",
    "IGNORE_INDEX",
    "FrameProjection",
    "Seq2SeqDecoder",
]
