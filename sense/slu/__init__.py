"""Spoken language understanding by CTC on encoder frames (SENSE paper, appendix B1).

The output of the model is the transcript with each entity or slot opened by a
character of its type and closed by a shared character (:mod:`sense.slu.markup`);
it is scored with NEER / COER / CVER and SLURP's SLU-F1 (:mod:`sense.slu.metrics`).

* :mod:`sense.slu.data`: SLU manifests (``spans`` column) and datasets;
* :mod:`sense.slu.brain`: :class:`SLUBrain`, the CTC probe fine-tuning on
  :class:`sense.finetune.FineTuneBrain`;
* :mod:`sense.slu.recipe`: :func:`run`, the training entry point every SLU
  recipe's ``train.py`` calls;
* :mod:`sense.slu.export`, :mod:`sense.slu.inference`: the exported folder and
  :class:`SLU` (``SLU.from_hparams``), used by ``sense slu``.
"""

from sense.slu.markup import LabelMarkup

__all__ = ["SLU", "LabelMarkup"]


def __getattr__(name):  # SLU imports speechbrain's inference stack: load it on demand
    if name == "SLU":
        from sense.slu.inference import SLU

        return SLU
    raise AttributeError(f"module 'sense.slu' has no attribute {name!r}")
