"""Speech translation: speech encoder frames -> projection -> mBART-50 / NLLB decoder.

The SENSE paper's set-up (sections V-D, VI-D, appendix B3): see
:mod:`sense.translation.decoder` (the model), :mod:`sense.translation.brain`
(training), :mod:`sense.translation.bleu` (BLEU and the Table VI layout),
:mod:`sense.translation.export` and :mod:`sense.translation.inference`
(:class:`Translator`).
"""

from sense.translation.bleu import BleuTable, bleu_by_language, corpus_bleu
from sense.translation.decoder import FrameProjection, Seq2SeqDecoder
from sense.translation.inference import Translator

__all__ = [
    "BleuTable",
    "FrameProjection",
    "Seq2SeqDecoder",
    "Translator",
    "bleu_by_language",
    "corpus_bleu",
]
