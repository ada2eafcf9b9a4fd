"""The embedded demo: a synthetic multilingual speech corpus built from PyPI packages alone.

- :mod:`sense.demo.corpus`: a parallel corpus in six languages (en, fr, de, es,
  it, ru) generated from a small hand-written grammar, and its train/dev/held-out
  split.
- :mod:`sense.demo.synth`: espeak-ng (from ``espeakng-loader``) through ctypes,
  with word boundaries and seeded voice variation.
- :mod:`sense.demo.commonvoice`: the synthesized corpus written as a real
  Common Voice release, so the Common Voice recipe prepares it unchanged.
- :mod:`sense.demo.recipes`: every task's demo (``run``, ``slu``, ``translation``,
  ``zerost``, ``dual_encoder``, ``summarization``) writes its data in a recipe's
  layout and runs that recipe's ``train.py`` with its YAML and overrides.

Example
-------
>>> from sense.demo import build_parallel_corpus, split_corpus
>>> split = split_corpus(build_parallel_corpus(100, seed=0), n_heldout=10, n_dev=10)
>>> len(split.train), split.heldout[0]["ru"][:1].isupper()
(80, True)
"""

from sense.demo.commonvoice import load_heldout, load_word_alignments, write_commonvoice_release
from sense.demo.corpus import LANGUAGES, CorpusSplit, build_parallel_corpus, split_corpus
from sense.demo.synth import EspeakSynthesizer, Synthesis

__all__ = [
    "LANGUAGES",
    "CorpusSplit",
    "EspeakSynthesizer",
    "Synthesis",
    "build_parallel_corpus",
    "load_heldout",
    "load_word_alignments",
    "split_corpus",
    "write_commonvoice_release",
]
