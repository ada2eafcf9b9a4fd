"""ZeroST: zero-shot speech translation through a Q-Former into a frozen NLLB.

The pieces (paper: ``../shared/seeds/002_aa94e236ee3abfdc.txt``):

* :mod:`sense.zerost.speech`: the frozen speech encoder (Whisper, wav2vec2 /
  MMS, w2v-BERT 2.0 or a ``sense`` model folder) with bottleneck adapters
  (:mod:`sense.zerost.adapters`) and a projection to the Q-Former's width;
* :mod:`sense.zerost.qformer`: Q-Simple, Q-Lite and Q-NLLB, chosen by name;
* :mod:`sense.zerost.cache`: the NLLB encoder's token embeddings of every
  transcript, computed once (the KD teacher);
* :mod:`sense.zerost.losses`: the fine-grained and global KD losses;
* :mod:`sense.zerost.brain`: the KD and NLL training steps, and
  :func:`sense.zerost.brain.translate` into any NLLB language;
* :mod:`sense.zerost.export` and :mod:`sense.zerost.inference`: a trained
  model as a folder that :class:`~sense.zerost.inference.ZeroSTTranslator`
  and ``sense translate --target-lang`` load.
"""
