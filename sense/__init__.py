"""sense: speech encoders that share the semantic space of a multilingual text encoder.

SENSE (Shared Embedding for N-lingual Speech and tExt) trains a speech encoder
as a student of a frozen multilingual sentence encoder, so that an utterance
lands next to the embedding of its transcript and of that transcript's
translations.
"""

__version__ = "0.1.0"
