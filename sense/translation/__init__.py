"""Speech translation: speech encoder frames -> projection -> mBART-50 / NLLB decoder.

The SENSE paper's set-up (sections V-D, VI-D, appendix B3): see
:mod:`sense.translation.model` (the model), :mod:`sense.translation.brain`
(training), :mod:`sense.translation.metrics` (BLEU and the Table VI layout),
:mod:`sense.translation.export` and :mod:`sense.translation.inference`
(:class:`Translator`). Names are imported on first use, so that
``sense --help`` stays fast.
"""

import importlib

_EXPORTS = {
    "BleuTable": "sense.translation.metrics",
    "bleu_by_language": "sense.translation.metrics",
    "corpus_bleu": "sense.translation.metrics",
    "FrameProjection": "sense.translation.model",
    "Seq2SeqDecoder": "sense.translation.model",
    "Translator": "sense.translation.inference",
    "load_translator": "sense.translation.inference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sense.translation' has no attribute {name!r}")
